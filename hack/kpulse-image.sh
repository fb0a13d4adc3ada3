#!/usr/bin/env bash
# kpulse's container image without Docker: the kpulse binary, the shared libraries it links
# (glibc, libgcc_s, from this Debian 12 machine, as in the Dockerfile's distroless/cc-debian12
# base), CA certificates and a passwd entry for the nonroot user 65532, as an OCI archive.
#
#   hack/kpulse-image.sh OUT.tar [BINARY] [NAME]
#
# BINARY defaults to target/release/kpulse (built, or brought up to date, first), NAME to
# kpulse.local/kpulse:<first 12 hex digits of the binary's sha256>. Prints NAME. Load OUT.tar
# with `ctr -n k8s.io images import`, push it with hack/oci-push.py or any OCI tool. Same layout as the
# Dockerfile's image: /usr/local/bin/kpulse, USER 65532:65532, ENTRYPOINT
# ["/usr/local/bin/kpulse"], CMD ["run"].
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: hack/kpulse-image.sh OUT.tar [BINARY] [NAME]}"
binary="${2:-}"
if [[ -z "$binary" ]]; then
  (cd "$root" && cargo build --release --locked --bin kpulse >&2)
  binary="$root/target/release/kpulse"
fi
[[ -x "$binary" ]] || { echo "kpulse-image: no binary $binary" >&2; exit 2; }
sum="$(sha256sum "$binary" | cut -c1-12)"
name="${3:-kpulse.local/kpulse:$sum}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$work/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$work/group"
files=(--file "$binary=/usr/local/bin/kpulse:0755" --file "$work/passwd=/etc/passwd:0644"
       --file "$work/group=/etc/group:0644" --dir /tmp:1777 --dir /home/nonroot:0755)
# The dynamic loader and every library ldd resolves, at the paths the binary looks for them.
for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  files+=(--file "$(readlink -f "$lib")=$lib:0755")
done
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  files+=(--file "/etc/ssl/certs/ca-certificates.crt=/etc/ssl/certs/ca-certificates.crt:0644")
fi
python3 "$root/hack/oci-image.py" --out "$out" --name "$name" "${files[@]}" \
  --env PATH=/usr/local/bin --user 65532:65532 \
  --entrypoint '["/usr/local/bin/kpulse"]' --cmd '["run"]' \
  --label org.opencontainers.image.title=kpulse \
  --label "org.opencontainers.image.description=Event-driven Kubernetes alerting operator" \
  --label org.opencontainers.image.licenses=Apache-2.0 >/dev/null
echo "$name"
