"""Who may run a probe: MID servers, their capabilities, and MID selection (ServiceNow rules)."""
