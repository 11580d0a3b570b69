"""The instance: an HTTPS service shaped like ServiceNow's Table API, in front of the ECC queue."""
