#!/usr/bin/env bash
# Builds the container images the real node runs, without Docker and without any registry, as
# OCI archives in .cache/images/<key>/, and prints that directory as its last line:
#
#   busybox.tar  kpulse.local/busybox:1  Debian's busybox-static, every applet linked in /bin
#   pause.tar    kpulse.local/pause:1    the same layer, `sleep` as the pod sandbox process
#
# hack/node.sh pushes them to the cluster's registry (hack/oci-push.py). The key covers this script,
# hack/oci-image.py and the busybox binary, so a second run reuses the archives.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

busybox=/bin/busybox
if [[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" != "install ok installed" ]]; then
  echo "images: installing busybox-static" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends busybox-static >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends busybox-static >&2; }
fi

key="$(cat "$0" "$root/hack/oci-image.py" "$busybox" | sha256sum | cut -c1-16)"
out="$root/.cache/images/$key"
if [[ -f "$out/busybox.tar" && -f "$out/pause.tar" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

files="$out/files"
mkdir -p "$files"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$files/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$files/group"

layer=(--file "$busybox=/bin/busybox:0755" --file "$files/passwd=/etc/passwd:0644"
       --file "$files/group=/etc/group:0644" --dir /tmp:1777 --dir /root:0700
       --dir /proc --dir /sys --dir /dev --dir /etc)
for applet in $("$busybox" --list); do
  [[ "$applet" == busybox ]] || layer+=(--link "/bin/$applet=busybox")
done

python3 "$root/hack/oci-image.py" --out "$out/busybox.tar" --name kpulse.local/busybox:1 \
  "${layer[@]}" --env PATH=/bin --cmd '["sh"]' >/dev/null
python3 "$root/hack/oci-image.py" --out "$out/pause.tar" --name kpulse.local/pause:1 \
  "${layer[@]}" --env PATH=/bin --entrypoint '["/bin/sleep","2147483647"]' >/dev/null
echo "$out"
