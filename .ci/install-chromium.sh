#!/usr/bin/env bash
# Installs Debian's chromium when it is missing. The tests use it twice: its
# bundled SwiftShader Vulkan driver (vk_swiftshader_icd.json, a third Vulkan
# implementation with subgroups of 4 and less exact math) is one adapter of
# the CI matrix, and headless Chromium runs the web page's tests.
set -euo pipefail
icd() { dpkg -L chromium chromium-common 2>/dev/null | grep -m1 'vk_swiftshader_icd.json$' || true; }
if [ -z "$(icd)" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get: install Chromium with its SwiftShader Vulkan driver by hand" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
[ -n "$(icd)" ] || { echo "install-chromium: chromium installed but no vk_swiftshader_icd.json in it" >&2; exit 1; }
echo "install-chromium: $(chromium --version 2>/dev/null | head -n1), SwiftShader ICD $(icd)"
