#!/usr/bin/env python3
"""Writes a one-layer OCI image as an OCI image-layout tar archive, without Docker.

    hack/oci-image.py --out IMAGE.tar --name REF [--file SRC=DEST[:MODE]]... [--link DEST=TARGET]...
                      [--dir DEST[:MODE]]... [--entrypoint JSON] [--cmd JSON] [--user U]
                      [--env K=V]... [--workdir DIR] [--label K=V]...

The layer is an uncompressed tar whose entries are sorted, owned by 0:0 and dated 1970-01-01,
so the same inputs always give the same digests. The archive holds `oci-layout`, `index.json`
(annotated with the image name, which `ctr images import` uses) and `blobs/sha256/*`.
"""

import argparse
import hashlib
import io
import json
import os
import tarfile


def tar_info(name, kind, mode, size=0, target=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = target
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def parent_dirs(path):
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def layer(files, links, dirs):
    """The layer tar: files {dest: (src, mode)}, links {dest: target}, dirs {dest: mode}."""
    entries = {}
    for dest, mode in dirs.items():
        entries[dest] = ("dir", mode)
    for dest in list(files) + list(links):
        for d in parent_dirs(dest):
            entries.setdefault(d, ("dir", 0o755))
    for dest, (src, mode) in files.items():
        entries[dest] = ("file", mode, src)
    for dest, target in links.items():
        entries[dest] = ("link", target)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            entry = entries[name]
            if entry[0] == "dir":
                tar.addfile(tar_info(name, tarfile.DIRTYPE, entry[1]))
            elif entry[0] == "link":
                tar.addfile(tar_info(name, tarfile.SYMTYPE, 0o777, target=entry[1]))
            else:
                with open(entry[2], "rb") as f:
                    data = f.read()
                tar.addfile(tar_info(name, tarfile.REGTYPE, entry[1], len(data)), io.BytesIO(data))
    return buf.getvalue()


def blob(blobs, media_type, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def image(args, layer_tar):
    blobs = {}
    layer_desc = blob(blobs, "application/vnd.oci.image.layer.v1.tar", layer_tar)
    config = {
        "architecture": args.arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": args.env or ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/oci-image.py"}],
    }
    for key, value in (
        ("Entrypoint", args.entrypoint),
        ("Cmd", args.cmd),
        ("User", args.user),
        ("WorkingDir", args.workdir),
    ):
        if value is not None:
            config["config"][key] = json.loads(value) if key in ("Entrypoint", "Cmd") else value
    if args.label:
        config["config"]["Labels"] = dict(kv.split("=", 1) for kv in args.label)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(blobs, "application/vnd.oci.image.config.v1+json", canonical(config)),
        "layers": [layer_desc],
    }
    manifest_desc = blob(blobs, "application/vnd.oci.image.manifest.v1+json", canonical(manifest))
    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    manifest_desc["annotations"] = {
        "io.containerd.image.name": args.name,
        "org.opencontainers.image.ref.name": tag,
    }
    manifest_desc["platform"] = {"architecture": args.arch, "os": "linux"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [manifest_desc]}
    return blobs, index


def write_archive(out, blobs, index):
    tmp = "%s.%d.partial" % (out, os.getpid())
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data):
            tar.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
        add("oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
        add("index.json", canonical(index))
        for digest in sorted(blobs):
            add("blobs/sha256/" + digest.split(":", 1)[1], blobs[digest])
    os.replace(tmp, out)


def parse_mode(spec, default):
    path, _, mode = spec.partition(":")
    return path.lstrip("/"), int(mode, 8) if mode else default


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--name", required=True, help="image reference, e.g. kpulse.local/busybox:1")
    p.add_argument("--arch", default="amd64")
    p.add_argument("--file", action="append", default=[], help="SRC=DEST[:MODE]")
    p.add_argument("--link", action="append", default=[], help="DEST=TARGET (a symlink)")
    p.add_argument("--dir", action="append", default=[], help="DEST[:MODE]")
    p.add_argument("--entrypoint")
    p.add_argument("--cmd")
    p.add_argument("--user")
    p.add_argument("--workdir")
    p.add_argument("--env", action="append")
    p.add_argument("--label", action="append")
    args = p.parse_args()

    files = {}
    for spec in args.file:
        src, _, dest = spec.partition("=")
        path, mode = parse_mode(dest, 0o755 if os.access(src, os.X_OK) else 0o644)
        files[path] = (src, mode)
    links = {}
    for spec in args.link:
        dest, _, target = spec.partition("=")
        links[dest.lstrip("/")] = target
    dirs = dict(parse_mode(spec, 0o755) for spec in args.dir)
    blobs, index = image(args, layer(files, links, dirs))
    write_archive(args.out, blobs, index)
    print(index["manifests"][0]["digest"])


if __name__ == "__main__":
    main()
