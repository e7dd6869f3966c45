"""The configs tfssl ships: `tfssl/flags/<task>/<dataset>.cfg`, inside the package so that a wheel
carries them (the repository's top-level `flags/` is a link to this folder, so the shell wrappers
and every documented path keep working in a clone).

A config is named by `<task>/<dataset>` (`simclr/imagenet`): `tfssl-train --config=simclr/imagenet`,
`--flagfile=simclr/imagenet` where no such file exists, `tfssl.config_from_flagfile("simclr/imagenet")`,
and `tfssl-train --list_configs` lists them with the first line of each header.
"""

import os

FLAGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flags")
SUFFIX = ".cfg"


def names():
  """Every shipped config as `task/dataset`, sorted."""
  found = []
  for task in sorted(os.listdir(FLAGS_DIR)):
    folder = os.path.join(FLAGS_DIR, task)
    if os.path.isdir(folder):
      found += ["%s/%s" % (task, f[:-len(SUFFIX)]) for f in sorted(os.listdir(folder))
                if f.endswith(SUFFIX)]
  return found


def path_of(name):
  """The file of the shipped config `name` (`task/dataset`, `.cfg` and a leading `flags/`
  allowed), or None."""
  name = name[len("flags/"):] if name.startswith("flags/") else name
  name = name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name
  if name.count("/") != 1 or ".." in name:
    return None
  path = os.path.join(FLAGS_DIR, name + SUFFIX)
  return path if os.path.isfile(path) else None


def resolve(path_or_name):
  """A flagfile path as given when it exists, else the shipped config it names; ValueError (one
  line naming --list_configs) when it is neither."""
  if os.path.exists(path_or_name):
    return path_or_name
  packaged = path_of(path_or_name)
  if packaged is None:
    raise ValueError("no flagfile %s and no shipped config of that name: give a path, or one of "
                     "`tfssl-train --list_configs` (task/dataset, e.g. simclr/fashion_mnist)"
                     % path_or_name)
  return packaged


def summary(name, width=100):
  """The first line of the config's header comment (what it is), without the `# `, cut at
  `width` characters."""
  with open(path_of(name)) as f:
    for line in f:
      if line.startswith("#"):
        text = line.lstrip("#").strip()
        return text if len(text) <= width else text[:width - 3].rstrip() + "..."
      if line.strip():
        break
  return ""


def listing():
  """`task/dataset  first header line`, one per shipped config."""
  shipped = names()
  width = max(len(n) for n in shipped)
  return "\n".join("%-*s  %s" % (width, n, summary(n)) for n in shipped)
