"""examples/: every curl script and the Postman pre-request script produce deliveries the ingress accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from paystream.dev.secrets import DevSecrets
from schemas.serde import envelope_serde
from tests.fixtures.kafka import drain

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def dev_ingress(tmp_path: Path, topics: Any, ingress_factory: Any, ingress_settings_factory: Any) -> Any:
    """An ingress trusting the dev secrets of a fresh data dir, as `paystream dev` sets it up."""
    data_dir = tmp_path / "data"
    secrets = DevSecrets.load_or_create(data_dir)
    env = secrets.env(data_dir)
    settings = ingress_settings_factory(
        topic_prefix=topics.prefix, data_dir=data_dir,
        stripe_webhook_secrets=[secrets.stripe_secret],
        standard_webhook_secrets={secrets.standard_source: [secrets.standard_secret]},
        paypal_webhook_id=[secrets.paypal_webhook_id],
        paypal_trust_roots_file=Path(env["PAYSTREAM_PAYPAL_TRUST_ROOTS_FILE"]),
        paypal_cert_cache_dir=Path(env["PAYSTREAM_PAYPAL_CERT_CACHE_DIR"]),
    )
    server = ingress_factory(settings)
    return server, secrets, data_dir


@pytest.mark.parametrize("provider", ["stripe", "paypal", "standard"])
async def test_curl_scripts_are_accepted(provider: str, dev_ingress: Any, topics: Any,
                                         consumer_factory: Any) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    server, _, data_dir = dev_ingress
    env = {**os.environ, "PAYSTREAM_INGRESS_URL": server.url, "PAYSTREAM_DATA_DIR": str(data_dir),
           "PAYSTREAM_BIN": str(Path(sys.executable).parent / "paystream")}
    result = subprocess.run([str(EXAMPLES / f"{provider}_curl.sh")], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "accepted", answer
    [record] = await drain(await consumer_factory(topics.raw), expected=1)
    envelope = envelope_serde().decode(record.value)
    assert envelope.provider == provider
    assert envelope.body == next((EXAMPLES / "payloads").glob(f"{provider}_*.json")).read_bytes()


NODE_RUNNER = r"""
const vm = require('vm'); const crypto = require('crypto'); const fs = require('fs');
const collection = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const item = collection.item[0];
const vars = Object.fromEntries(collection.variable.map(v => [v.key, v.value]));
vars.stripe_secret = process.argv[3];
const headers = {};
const request = {body: {raw: item.request.body.raw},
                 headers: {upsert: (h) => { headers[h.key] = h.value; }}};
const pm = {
  collectionVariables: {get: (k) => vars[k], set: (k, v) => { vars[k] = v; }},
  variables: {replaceIn: (s) => s.replace(/{{(\w+)}}/g, (_, k) => vars[k])},
  request,
};
// the two CryptoJS calls the script uses, on Node's crypto
const hmac = (msg, key) => crypto.createHmac('sha256', key).update(msg, 'utf8').digest('hex');
const CryptoJS = {HmacSHA256: (msg, key) => ({toString: () => hmac(msg, key)}), enc: {Hex: 'hex'}};
const prerequest = item.event.find(e => e.listen === 'prerequest').script.exec.join('\n');
vm.runInNewContext(prerequest, {pm, CryptoJS, Date, Math});
const url = item.request.url.replace('{{ingress_url}}', '');
process.stdout.write(JSON.stringify({body: request.body.raw, headers, url}));
"""


async def test_postman_pre_request_script_signs_correctly(dev_ingress: Any, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (needed to run the Postman pre-request script)")
    server, secrets, _ = dev_ingress
    runner = tmp_path / "run_prerequest.js"
    runner.write_text(NODE_RUNNER)
    out = subprocess.run([node, str(runner), str(EXAMPLES / "paystream.postman_collection.json"),
                          secrets.stripe_secret], capture_output=True, text=True, timeout=30, check=True)
    prepared = json.loads(out.stdout)
    assert prepared["headers"]["Stripe-Signature"].startswith("t=")
    async with httpx.AsyncClient() as client:
        response = await client.post(server.url + prepared["url"], content=prepared["body"].encode(),
                                     headers={"content-type": "application/json", **prepared["headers"]})
    assert response.status_code == 200, response.text
    assert response.json()["event_key"].startswith("stripe:evt_postman_")
