"""SNMP: the ``SNMP`` probe (walks an ``oid_spec_list``) and the ``SNMPClassify`` probe.

v1/v2c through a native codec, SNMPv3 through pysnmp 7; results as the ECC typed XML.
"""
