"""The Python side uses only protocol names that protocol.ts declares (the other direction, that the
generated protocol_names.json is current, is test/unit/pytorch-protocol.test.ts)."""
import pathlib
import re

from moe_scope_worker import protocol

PACKAGE = pathlib.Path(protocol.__file__).parent
SOURCES = {p.name: p.read_text(encoding="utf-8") for p in sorted(PACKAGE.glob("*.py"))}


def test_every_error_code_the_worker_raises_or_sends_is_a_protocol_code():
    used = set()
    for text in SOURCES.values():
        used |= set(re.findall(r'EngineFailure\(\s*"([^"]+)"', text))
        used |= set(re.findall(r'"code":\s*"([^"]+)"', text))
    used |= set(re.findall(r'return "([a-z-]+)"\s*$', SOURCES["server.py"], re.M))  # its reclassification of engine failures
    assert {"bad-input", "bad-model", "non-finite", "provider-unavailable"} <= used, used
    assert used <= set(protocol.ERROR_CODES), used - set(protocol.ERROR_CODES)


def test_every_message_type_the_worker_writes_or_reads_is_a_protocol_type():
    sent = set(re.findall(r'"type":\s*"([^"]+)"', SOURCES["server.py"]))
    read = set(re.findall(r'kind == "([^"]+)"', SOURCES["server.py"]))
    assert sent == set(protocol.ENGINE_TO_HOST_TYPES), sent
    assert read == set(protocol.HOST_TO_ENGINE_TYPES), read


def test_served_methods_and_families_are_subsets_of_the_protocol():
    assert set(protocol.SERVED_METHODS) <= set(protocol.METHODS)
    assert set(protocol.FAMILIES) <= set(protocol.MOE_FAMILIES), set(protocol.FAMILIES) - set(protocol.MOE_FAMILIES)


def test_an_undeclared_code_is_refused():
    try:
        protocol.EngineFailure("out-of-memory", "x")
    except AssertionError:
        return
    raise AssertionError("EngineFailure accepted a code protocol.ts does not declare")
