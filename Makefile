# midprobe: every step CI and a newcomer need. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the lab, the tests and the probes use (the lab daemons, the reference
# clients, nmap, PostgreSQL for the multi-agent queue, tcpdump for the no-leak test, graphviz
# to check that `cmdb map --format dot` draws, chromium and its driver for the console's browser test).
SYSTEM_PACKAGES := openssh-server openssh-client snmpd snmp dnsmasq-base nmap postgresql \
	tcpdump iproute2 procps iputils-ping bind9-dnsutils nftables openssl adns-tools sudo graphviz \
	lldpd ieee-data chromium chromium-driver
PACKAGES := capabilities probes runner
DEMO_DIR ?= demo-output

.PHONY: help system-deps venv lint typecheck test unit mutate demo bench classify-report zoo fixtures lab-map lab-down clean

help:
	@echo "make demo       set everything up, bring up the lab, the instance and a validated MID, discover the lab over HTTPS, print the console's address"
	@echo "make test       set everything up, then ruff, mypy --strict and the whole test suite (lab included)"
	@echo "make unit       only the fast tests that need no lab"
	@echo "make mutate     hand-written mutants of the pure modules against their unit tests (slow)"
	@echo "make bench      benchmarks: midprobe against the reference tools on the lab"
	@echo "make fixtures   re-record fixtures/ from a fresh lab"
	@echo "make lab-map    draw docs/lab-map.svg from a discovery of a fresh lab"
	@echo "make lab-down   remove every namespace midprobe left behind"

# Installs only what is missing, so a second run costs a dpkg query.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77' wheel
	$(PY) -m pip install -q -e '.[dev]'
	@# mypy reads the packages through a link tree named like the installed modules.
	mkdir -p build/typecheck/midprobe
	for p in $(PACKAGES); do ln -sfn ../../../$$p build/typecheck/midprobe/$$p; done
	touch $@

lint: venv
	$(VENV)/bin/ruff check $(PACKAGES) tests bench
	$(VENV)/bin/ruff format --check $(PACKAGES) tests bench

typecheck: venv
	$(VENV)/bin/mypy -p midprobe.capabilities -p midprobe.probes -p midprobe.runner
	$(VENV)/bin/mypy bench
	$(VENV)/bin/mypy tests

# Two workers (the machine's two cores), whole files at a time: the tests of one file run one after
# the other in one worker (test_lab_lifecycle's `lab down --all` must not run beside its own labs).
# Not --dist loadgroup: pytest-xdist 3.8 marks groups in a node id field pytest 9 no longer reads.
test: system-deps venv lint typecheck
	$(PY) -m pytest -n 2 --dist loadfile

unit: venv
	$(PY) -m pytest -m "not lab and not postgres"

# Not part of `make test`: every mutant reruns a module's tests, minutes in all.
mutate: venv
	$(PY) tests/mutation/mutate.py

demo: system-deps venv
	$(VENV)/bin/midprobe demo --workdir $(DEMO_DIR)

bench: system-deps venv
	$(PY) bench/run_all.py --readme README.md

# SNMPClassify against the zoo (snmpsim-data's recordings in the lab): class, vendor, model, share right.
classify-report: system-deps venv
	$(PY) bench/bench_classify.py

# The zoo lab, left running: each used recording answers at its own address of 198.18.1.0/24
# (community public); `midprobe lab exec -- midprobe scan --lab --snmp-public 198.18.1.0/24`.
zoo: system-deps venv
	$(VENV)/bin/midprobe lab up --profile fixtures/lab/zoo.toml

fixtures: system-deps venv
	$(PY) fixtures/record.py
	$(PY) fixtures/nmap/record.py

lab-map: system-deps venv
	$(PY) fixtures/record_lab_map.py

lab-down: venv
	$(VENV)/bin/midprobe lab down --all

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis $(DEMO_DIR)
