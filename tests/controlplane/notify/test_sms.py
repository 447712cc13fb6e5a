"""SMS through a real HTTP gateway (an aiohttp test server that records requests)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from beeldbel.config import Secret, SmsConfig
from controlplane.base.errors import DeliveryFailed
from controlplane.notify.sms import join_link_text, send_sms

NUMBER = "+31612345678"
LINK = "https://desk.example/gesprek#t=AbC-123_xyz0123456789abcdefghij"


@pytest.fixture
async def gateway(aiohttp_server):
    """A gateway whose answer the test chooses: a status, or a hang."""
    state: dict[str, Any] = {"requests": [], "status": 201, "hang": False}

    async def receive(request: web.Request) -> web.Response:
        state["requests"].append(
            {
                "authorization": request.headers.get("Authorization"),
                "content_type": request.content_type,
                "body": await request.json(),
            }
        )
        if state["hang"]:
            await asyncio.sleep(5)
        return web.json_response({"id": "m1"}, status=state["status"])

    app = web.Application()
    app.router.add_post("/send", receive)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}/send", state


def sms_config(url: str, **changes: Any) -> SmsConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "gateway_url": url,
        "auth_header": Secret("Bearer gateway-key"),
        "sender_id": "Politie",
        "timeout_seconds": 1,
    }
    values.update(changes)
    return SmsConfig(**values)


async def test_text_is_posted_with_auth_header(gateway):
    url, state = gateway
    text = join_link_text(LINK, "nl", "Politie")
    await send_sms(sms_config(url), NUMBER, text)
    (request,) = state["requests"]
    assert request["authorization"] == "Bearer gateway-key"
    assert request["content_type"] == "application/json"
    assert request["body"] == {"from": "Politie", "to": NUMBER, "text": text}
    assert LINK in text
    assert "videogesprek" in text


def test_text_language():
    assert "video call" in join_link_text(LINK, "en", "Desk")
    assert "videogesprek" in join_link_text(LINK, "xx", "Desk")


@pytest.mark.parametrize("status", [500, 401, 302])
async def test_gateway_refusal_is_delivery_failed(gateway, capsys, status):
    url, state = gateway
    state["status"] = status
    with pytest.raises(DeliveryFailed, match="delivery_sms_failed"):
        await send_sms(sms_config(url), NUMBER, LINK)
    logged = capsys.readouterr()
    assert "sms_failed" in logged.out + logged.err
    for secret in (NUMBER, LINK, "gateway-key"):
        assert secret not in logged.out + logged.err


async def test_gateway_timeout_is_delivery_failed(gateway):
    url, state = gateway
    state["hang"] = True
    with pytest.raises(DeliveryFailed, match="delivery_sms_failed"):
        await send_sms(sms_config(url), NUMBER, "hello")
    assert len(state["requests"]) == 1


async def test_gateway_unreachable_is_delivery_failed(unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}/send"
    with pytest.raises(DeliveryFailed, match="delivery_sms_failed"):
        await send_sms(sms_config(url), NUMBER, "hello")


async def test_disabled_or_bad_number_is_refused_before_sending(gateway):
    url, state = gateway
    with pytest.raises(DeliveryFailed, match="delivery_sms_disabled"):
        await send_sms(sms_config(url, enabled=False), NUMBER, "x")
    for number in ("0612345678", "+0612345678", "+31 6 1234 5678", ""):
        with pytest.raises(DeliveryFailed, match="delivery_bad_number"):
            await send_sms(sms_config(url), number, "x")
    assert state["requests"] == []


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="gateway_url"):
        SmsConfig(enabled=True)
    with pytest.raises(ValueError, match="gateway_url"):
        SmsConfig(gateway_url="ftp://gw")
