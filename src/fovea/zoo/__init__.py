"""The demo zoo: real models and data, built offline from installed packages (`fovea zoo build`)."""

from fovea.zoo.registry import ZooEntry, build_zoo, list_zoo, zoo_dir

__all__ = ["ZooEntry", "build_zoo", "list_zoo", "zoo_dir"]
