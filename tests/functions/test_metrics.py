from functions.metrics import GatewayMetrics


def test_each_gateway_has_its_own_registry() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    a.guardrail_decisions.labels("input", "presidio", "mask").inc()
    assert b'llmp_guardrail_decisions_total{action="mask",detector="presidio",stage="input"} 1.0' \
        in a.render()
    assert b"stage=\"input\"" not in b.render()
