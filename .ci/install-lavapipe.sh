#!/usr/bin/env bash
# Installs Mesa lavapipe (Vulkan on the CPU) from bookworm-backports when no
# Vulkan driver is present. Plain bookworm's Mesa 22.3 runs our compute
# kernels 2-3x slower than 25.0.x, so the version is pinned.
set -euo pipefail
MESA_VERSION="${MESA_VERSION:-25.0.7-2~bpo12+1}"

have_vulkan_icd() {
  [ -n "$(find /usr/share/vulkan/icd.d /etc/vulkan/icd.d -name '*.json' 2>/dev/null | head -n 1)" ]
}

if have_vulkan_icd; then
  echo "install-lavapipe: a Vulkan driver is already present:"
  ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null || true
  exit 0
fi

if [ "$(uname -s)" != "Linux" ]; then
  echo "install-lavapipe: not Linux; wgpu uses the system's Metal or DX12 driver"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-lavapipe: no Vulkan driver and no apt-get here: install your distribution's Mesa Vulkan drivers (lavapipe) or a GPU driver" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
apt-get install -y -qq -t bookworm-backports --no-install-recommends \
  "mesa-vulkan-drivers=${MESA_VERSION}" libvulkan1 >/dev/null
have_vulkan_icd || { echo "install-lavapipe: no Vulkan ICD after install" >&2; exit 1; }
echo "install-lavapipe: installed mesa-vulkan-drivers ${MESA_VERSION}"
