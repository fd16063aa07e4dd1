#!/usr/bin/env bash
# Lays out Google's Noto colour emoji (the npm package emoji-datasource-google,
# 64x64 RGBA PNGs, MIT licence for the data set, Apache 2.0 / OFL for the
# images) as an image folder with one sub-folder per category, for
#   gan-wgpu train --data DIR --model dcgan --image-size 32
# Usage: scripts/fetch-emoji.sh [DIR]   (default: data/emoji; never committed)
# Needs npm (the registry) and python3. Skin-tone variants go with their
# emoji's category; "Component" (5 skin-tone swatches) is left out.
set -euo pipefail
version=16.0.0
dest=${1:-data/emoji}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "emoji-datasource-google@$version" >/dev/null)
tar xzf "$work/emoji-datasource-google-$version.tgz" -C "$work" package/emoji.json package/img/google/64 package/LICENSE
python3 - "$work/package" "$dest" <<'PY'
import json, os, shutil, sys
src, dest = sys.argv[1], sys.argv[2]
emoji = json.load(open(os.path.join(src, "emoji.json")))
copied = {}
for e in emoji:
    category = e["category"]
    if category == "Component":
        continue
    # Folder names without spaces or '&' ("Smileys & Emotion" -> smileys-emotion).
    folder = "-".join(w for w in category.lower().replace("&", " ").split())
    images = [e["image"]] + [v["image"] for v in (e.get("skin_variations") or {}).values()]
    for name in images:
        path = os.path.join(src, "img", "google", "64", name)
        if not os.path.isfile(path):
            continue
        os.makedirs(os.path.join(dest, folder), exist_ok=True)
        shutil.copyfile(path, os.path.join(dest, folder, name))
        copied[folder] = copied.get(folder, 0) + 1
shutil.copyfile(os.path.join(src, "LICENSE"), os.path.join(dest, ".LICENSE-emoji-datasource"))  # hidden: not data
for k in sorted(copied):
    print(f"{copied[k]:5d} {k}")
print(f"{sum(copied.values())} images in {len(copied)} class folders -> {dest}")
PY
