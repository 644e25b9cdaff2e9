import json
import logging

from models.logs import JsonFormatter


def test_json_lines_carry_extra_fields() -> None:
    record = logging.LogRecord("llmp.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.tenant = "acme"
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == "hello x"
    assert out["level"] == "info"
    assert out["tenant"] == "acme"
    assert out["ts"].endswith("Z")
