"""Device classification: everything discovery gathered about a host -> a CMDB class, with evidence."""

from midprobe.probes.classify.engine import (
    Classification,
    Classifier,
    NmapOsClass,
    Observations,
    default_classifier,
)

__all__ = ["Classification", "Classifier", "NmapOsClass", "Observations", "default_classifier"]
