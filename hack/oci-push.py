#!/usr/bin/env python3
"""Pushes OCI image-layout archives (hack/oci-image.py, hack/kpulse-image.sh) to a registry over
the OCI distribution API, without Docker:

    oci-push.py REGISTRY ARCHIVE...      e.g. oci-push.py 127.0.0.1:5000 busybox.tar

Each archive's image keeps its repository and tag (`io.containerd.image.name`, e.g.
`kpulse.local/busybox:1` becomes `busybox:1` on REGISTRY, where containerd's hosts.toml sends
`kpulse.local`). Blobs the registry already has are not sent again (HEAD first). Plain HTTP: the
registry listens on 127.0.0.1 only. Prints one line per image pushed.
"""
import hashlib
import http.client
import json
import sys
import tarfile
import urllib.parse


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, response.headers, data


def push_blob(conn, repo, digest, data):
    status, _, _ = request(conn, "HEAD", f"/v2/{repo}/blobs/{digest}")
    if status == 200:
        return
    status, headers, body = request(conn, "POST", f"/v2/{repo}/blobs/uploads/")
    if status != 202:
        sys.exit(f"oci-push: starting the upload of {digest} to {repo}: HTTP {status} {body[:200]!r}")
    location = urllib.parse.urlsplit(headers["Location"])
    query = location.query + ("&" if location.query else "") + "digest=" + urllib.parse.quote(digest)
    status, _, body = request(conn, "PUT", f"{location.path}?{query}", body=data,
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Length": str(len(data))})
    if status != 201:
        sys.exit(f"oci-push: uploading {digest} to {repo}: HTTP {status} {body[:200]!r}")


def push(registry, archive):
    with tarfile.open(archive) as tar:
        def read(name):
            return tar.extractfile(name).read()

        def blob(digest):
            data = read("blobs/sha256/" + digest.split(":", 1)[1])
            if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                sys.exit(f"oci-push: {archive}: blob {digest} does not match its digest")
            return data

        conn = http.client.HTTPConnection(registry, timeout=60)
        for desc in json.loads(read("index.json"))["manifests"]:
            name = desc["annotations"]["io.containerd.image.name"]
            host, _, path = name.partition("/")
            repo, _, tag = path.rpartition(":") if ":" in path else (path, "", "latest")
            manifest = blob(desc["digest"])
            parsed = json.loads(manifest)
            for layer in [parsed["config"], *parsed["layers"]]:
                push_blob(conn, repo, layer["digest"], blob(layer["digest"]))
            status, _, body = request(conn, "PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
                                      headers={"Content-Type": desc["mediaType"]})
            if status != 201:
                sys.exit(f"oci-push: the manifest of {name}: HTTP {status} {body[:200]!r}")
            print(f"{name} -> {registry}/{repo}:{tag} ({desc['digest']})")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for archive in sys.argv[2:]:
        push(sys.argv[1], archive)


if __name__ == "__main__":
    main()
