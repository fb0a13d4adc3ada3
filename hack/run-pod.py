#!/usr/bin/env python3
"""Plays the kubelet for one short-lived pod on the local control plane, which has no kubelet.

    hack/run-pod.py KUBECTL NAMESPACE LABEL-SELECTOR BINARY WORKDIR

Waits for the newest Pending pod that matches the selector, writes its configMap and secret
volumes to WORKDIR as the kubelet mounts them (one file per key; an optional Secret that does
not exist as an empty directory), runs its first container's args with BINARY (the image's
entrypoint built on this machine), with every argument under a mount path moved into WORKDIR,
and records the outcome in the pod's status as a kubelet would: phase Succeeded or Failed, the
exit code, and with `terminationMessagePolicy: FallbackToLogsOnError` the end of the output as
the termination message. Prints the command's output; exits with its exit code (2 when no pod
came).

What it does not do: pull or run the image, enforce the security context or resources, mount
anything but configMap and secret volumes. The chart test uses it for the check-config hook Job.
"""

import base64
import datetime
import json
import os
import subprocess
import sys
import time


def kubectl(kubectl_bin, *args, check=True):
    return subprocess.run(
        [kubectl_bin, *args], capture_output=True, text=True, check=check
    )


def newest_pending(kubectl_bin, namespace, selector, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = kubectl(
            kubectl_bin, "get", "pods", "-n", namespace, "-l", selector, "-o", "json",
            check=False,
        )
        if out.returncode == 0:
            pods = [
                p
                for p in json.loads(out.stdout)["items"]
                if p["status"].get("phase") == "Pending"
                and not p["metadata"].get("deletionTimestamp")
            ]
            if pods:
                return max(pods, key=lambda p: p["metadata"]["creationTimestamp"])
        time.sleep(0.5)
    return None


def mount(kubectl_bin, namespace, volume, target):
    """Writes one volume's keys to `target`; returns an error text or None."""
    os.makedirs(target, exist_ok=True)
    if "configMap" in volume:
        kind, name, optional = "configmap", volume["configMap"]["name"], False
    elif "secret" in volume:
        src = volume["secret"]
        kind, name, optional = "secret", src["secretName"], src.get("optional", False)
    else:
        return f"volume {volume['name']}: only configMap and secret volumes are supported"
    got = kubectl(kubectl_bin, "get", kind, name, "-n", namespace, "-o", "json", check=False)
    if got.returncode != 0:
        if optional and "NotFound" in got.stderr:
            return None
        return f"volume {volume['name']}: {got.stderr.strip()}"
    obj = json.loads(got.stdout)
    for key, value in (obj.get("data") or {}).items():
        data = base64.b64decode(value) if kind == "secret" else value.encode()
        with open(os.path.join(target, key), "wb") as f:
            f.write(data)
    return None


def main():
    kubectl_bin, namespace, selector, binary, workdir = sys.argv[1:6]
    pod = newest_pending(kubectl_bin, namespace, selector)
    if pod is None:
        print(f"run-pod: no Pending pod matching {selector} in {namespace}", file=sys.stderr)
        return 2
    spec = pod["spec"]
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = container.get("volumeMounts", [])
    for m in mounts:
        problem = mount(kubectl_bin, namespace, volumes[m["name"]], workdir + m["mountPath"])
        if problem:
            print(f"run-pod: {problem}", file=sys.stderr)
            return 2
    prefixes = [m["mountPath"] for m in mounts]
    args = [
        workdir + a if any(a == p or a.startswith(p + "/") for p in prefixes) else a
        for a in container.get("args", [])
    ]
    run = subprocess.run([binary, *args], capture_output=True, text=True)
    output = run.stdout + run.stderr
    print(output, end="")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    terminated = {
        "exitCode": run.returncode,
        "reason": "Completed" if run.returncode == 0 else "Error",
        "startedAt": now,
        "finishedAt": now,
    }
    if run.returncode != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        terminated["message"] = output[-2048:]
    status = {
        "status": {
            "phase": "Succeeded" if run.returncode == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
    }
    kubectl(
        kubectl_bin, "patch", "pod", pod["metadata"]["name"], "-n", namespace,
        "--subresource=status", "--type=merge", "-p", json.dumps(status),
    )
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
