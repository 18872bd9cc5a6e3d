"""Datasets in the DeepHealth Toolkit Dataset Format (a YAML file beside its images)."""

from fovea.datasets.deephealth import DatasetSpec, Sample, load_dataset_yaml, parse_dataset_yaml, write_dataset_yaml

__all__ = ["DatasetSpec", "Sample", "load_dataset_yaml", "parse_dataset_yaml", "write_dataset_yaml"]
