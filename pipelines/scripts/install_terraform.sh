#!/usr/bin/env bash
# Install Terraform VERSION into DIR from releases.hashicorp.com, checking the release's SHA-256, and
# put it on the PATH of the following pipeline steps.
set -euo pipefail
version="$1"
dir="$2"
if [[ -x "$dir/terraform" ]] && "$dir/terraform" version | grep -q "v$version"; then
  echo "##vso[task.prependpath]$dir"
  exit 0
fi
base="https://releases.hashicorp.com/terraform/$version"
zip="terraform_${version}_linux_amd64.zip"
tmp="$(mktemp -d)"
curl -fsSL -o "$tmp/$zip" "$base/$zip"
curl -fsSL -o "$tmp/SHA256SUMS" "$base/terraform_${version}_SHA256SUMS"
(cd "$tmp" && grep " $zip\$" SHA256SUMS | sha256sum -c -)
mkdir -p "$dir"
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('terraform', sys.argv[2])" "$tmp/$zip" "$dir"
chmod +x "$dir/terraform"
rm -rf "$tmp"
echo "##vso[task.prependpath]$dir"
