"""DucklingEntityExtractor: Rasa's keys and entity shape, over HTTP (a local test server standing
in for the network) and in-process (the real Duckling core)."""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from nlu.duckling import DucklingConfig, DucklingEntityExtractor, to_entities
from nlu.errors import NLUModelError
from nlu.interpreter import NLUInterpreter
from nlu.types import Entity

REF = datetime(2027, 2, 1, 9, 0, tzinfo=timezone.utc).timestamp()  # a Monday
# What a Duckling server answers for "book 2 rooms from the 8th to the 11th of October".
SERVER_ANSWER = [
    {"body": "2", "start": 5, "end": 6, "dim": "number", "latent": False,
     "value": {"value": 2, "type": "value"}},
    {"body": "from the 8th to the 11th of October", "start": 13, "end": 48, "dim": "time",
     "latent": False,
     "value": {"type": "interval",
               "from": {"value": "2027-10-08T00:00:00.000+01:00", "grain": "day"},
               "to": {"value": "2027-10-12T00:00:00.000+01:00", "grain": "day"},
               "values": []}},
]


@pytest.fixture
def server() -> Iterator[dict[str, Any]]:
    """A Duckling-shaped HTTP server on a free port; records the form fields it got."""
    seen: dict[str, Any] = {"requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen["requests"].append({"path": self.path, "type": self.headers["Content-Type"],
                                     "form": dict(urllib.parse.parse_qsl(body))})
            payload = json.dumps(SERVER_ANSWER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    seen["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield seen
    httpd.shutdown()
    httpd.server_close()


def test_server_is_called_as_rasa_calls_it(server: dict[str, Any]) -> None:
    config = DucklingConfig.from_params({"url": server["url"], "dimensions": ["time", "number"],
                                         "timezone": "Europe/Lisbon", "timeout": 2})
    text = "book 2 rooms from the 8th to the 11th of October"
    entities = DucklingEntityExtractor(config).extract(text, REF)
    request = server["requests"][0]
    assert request["path"] == "/parse"
    assert request["type"].startswith("application/x-www-form-urlencoded")
    assert request["form"] == {"text": text, "locale": "en_EN", "tz": "Europe/Lisbon",
                               "dims": '["time", "number"]', "reftime": str(int(REF * 1000))}
    number, stay = (e.to_dict() for e in entities)
    assert number == {"entity": "number", "start": 5, "end": 6, "value": 2, "text": "2",
                      "additional_info": {"value": 2, "type": "value"},
                      "confidence_entity": 1.0, "extractor": "DucklingEntityExtractor"}
    assert stay["entity"] == "time" and stay["text"] == text[13:48]
    assert stay["value"] == {"to": "2027-10-12T00:00:00.000+01:00",
                             "from": "2027-10-08T00:00:00.000+01:00"}
    assert stay["additional_info"]["from"]["grain"] == "day"


def test_url_from_the_environment_wins(server: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RASA_DUCKLING_HTTP_URL", server["url"])
    extractor = DucklingEntityExtractor(DucklingConfig(url="http://127.0.0.1:9"))
    assert [e.entity for e in extractor.extract("2 rooms")] == ["number", "time"]


def test_unreachable_server_warns_once_and_duckling_runs_in_process(
        caplog: pytest.LogCaptureFixture) -> None:
    extractor = DucklingEntityExtractor(DucklingConfig(url="http://127.0.0.1:9",
                                                       dimensions=("time",), timeout=0.5))
    with caplog.at_level(logging.WARNING, logger="nlu.duckling"):
        first = extractor.extract("tomorrow", REF)
        second = extractor.extract("the day after tomorrow", REF)
    warnings = [r for r in caplog.records if "duckling.server_unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "in-process" in warnings[0].getMessage()
    assert first[0].value.startswith("2027-02-02") and second[0].value.startswith("2027-02-03")


def test_in_process_duckling_reads_dates_numbers_and_emails() -> None:
    extractor = DucklingEntityExtractor(DucklingConfig(dimensions=("time", "number", "email"),
                                                       timezone="Europe/Lisbon"))
    found = extractor.extract("the 14th of March 2030, two of us, ana@example.com", REF)
    assert [(e.entity, e.text) for e in found] == [
        ("time", "the 14th of March 2030"), ("number", "two"), ("email", "ana@example.com")]
    assert found[0].value.startswith("2030-03-14") and found[0].additional_info["grain"] == "day"
    assert found[1].value == 2 and found[2].value == "ana@example.com"
    # the reference time makes "next Friday" right, and a date without a year is the next one
    friday = extractor.extract("this Friday", REF)[0]
    assert friday.value.startswith("2027-02-05")
    january = extractor.extract("January 20", REF)[0]
    assert january.value.startswith("2028-01-20")


def test_only_configured_dimensions_come_out() -> None:
    extractor = DucklingEntityExtractor(DucklingConfig(dimensions=("email",)))
    assert [e.entity for e in extractor.extract("2 nights from tomorrow, a@b.co", REF)] == ["email"]
    assert to_entities(SERVER_ANSWER, ("time",))[0].entity == "time"


@pytest.mark.parametrize(("params", "message"), [
    ({"dimension": ["time"]}, r"no key\(s\) dimension"),
    ({"dimensions": ["date"]}, r"unknown dimension\(s\) date"),
    ({"dimensions": "time"}, "must be a list"),
    ({"timeout": 0}, "timeout must be > 0"),
    ({"timeout": "soon"}, "timeout must be a number"),
])
def test_bad_config_names_the_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(NLUModelError, match=message):
        DucklingConfig.from_params(params)


def test_interpreter_merges_duckling_with_the_model() -> None:
    """The model's number over the same characters gives way to Duckling's normalised one;
    its date (with a role) stays next to Duckling's time; a Duckling number inside a booking
    id is not a count."""

    text = "2 guests from the 3rd of May, ref SL-123456"
    date_at, ref_at = text.index("the 3rd"), text.index("SL-")

    class Spans:
        def extract_batch(self, texts: list[str]) -> list[list[Entity]]:
            return [[Entity(0, 1, "2", "number"),
                     Entity(date_at, date_at + 14, "the 3rd of May", "date", role="checkin"),
                     Entity(ref_at, ref_at + 9, "SL-123456", "booking_id")]]

    duckling = DucklingEntityExtractor(DucklingConfig(dimensions=("time", "number")))
    interpreter = NLUInterpreter({}, None, Spans(), {}, {}, {}, duckling=duckling)
    parse = interpreter.parse(text, reference_time=REF)
    got = [(e["entity"], e.get("role"), e["value"], e["extractor"] if "extractor" in e else None)
           for e in parse["entities"]]
    assert got[0] == ("number", None, 2, "DucklingEntityExtractor")
    assert ("date", "checkin", "the 3rd of May", None) in got
    assert any(e[0] == "time" and "2027-05-03" in str(e[2]) for e in got)
    assert [e[0] for e in got].count("number") == 1 and ("booking_id", None, "SL-123456",
                                                          None) in got


def test_regex_booking_ids_are_not_numbers() -> None:
    duckling = DucklingEntityExtractor(DucklingConfig(dimensions=("number",)))
    steps = {"regex": {"use_regexes": True, "use_lookup_tables": False, "case_sensitive": False}}
    interpreter = NLUInterpreter(steps, None, None, {}, {"booking_id": [r"SL-[0-9]{6}"]}, {},
                                 duckling=duckling)
    parse = interpreter.parse("please cancel SL-482913 for 2 guests", reference_time=REF)
    assert [(e["entity"], e["value"]) for e in parse["entities"]] == [
        ("booking_id", "SL-482913"), ("number", 2)]


def test_a_number_the_model_knows_is_kept_only_where_the_model_tagged_it() -> None:
    class Spans:
        labels = [("number", None, None), ("hotel", None, None)]

        def extract_batch(self, texts: list[str]) -> list[list[Entity]]:
            return [[Entity(0, 3, "two", "number"), Entity(9, 22, "the comet inn", "hotel")]]

    duckling = DucklingEntityExtractor(DucklingConfig(dimensions=("number", "time")))
    interpreter = NLUInterpreter({}, None, Spans(), {}, {}, {}, duckling=duckling)
    parse = interpreter.parse("two, at the comet inn, the cheaper one, on 12/05",
                              reference_time=REF)
    assert [(e["entity"], e["value"]) for e in parse["entities"] if e["entity"] == "number"] == [
        ("number", 2)]



def test_a_model_entity_inside_an_email_gives_way_to_it() -> None:
    text = "my email is lena.paris@example.fr, from paris"

    class Spans:
        labels = [("city", None, None)]

        def extract_batch(self, texts: list[str]) -> list[list[Entity]]:
            address = "lena.paris@example.fr"
            start = text.index(address)
            return [[Entity(start, start + len(address), address, "city"),
                     Entity(text.rindex("paris"), len(text), "paris", "city")]]

    duckling = DucklingEntityExtractor(DucklingConfig(dimensions=("email",)))
    interpreter = NLUInterpreter({}, None, Spans(), {}, {}, {}, duckling=duckling)
    parse = interpreter.parse(text, reference_time=REF)
    # the address is an email only; the city outside it stays
    assert [(e["entity"], e["value"]) for e in parse["entities"]] == [
        ("email", "lena.paris@example.fr"), ("city", "paris")]
