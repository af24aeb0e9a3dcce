"""The catalogs portals harvest: valid DCAT-US 1.1 (non-federal JSON schema) and DCAT-AP
2.1.1 (official SHACL shapes), both validated offline."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyshacl
import pytest
import rdflib
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from callerconnect.opendata.catalog import CatalogEntry, dcat_ap, dcat_us
from callerconnect.opendata.package import CORE_FILES

STANDARDS = Path(__file__).parents[1] / "fixtures" / "standards"
BASE = "https://police.example.ca"

# pyshacl builds an rdflib ConjunctiveGraph internally, which rdflib 7 reports as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")


def entry(email: str | None = "opendata@police.example.ca") -> CatalogEntry:
    return CatalogEntry(
        agency_id="ottawa",
        agency_name_en="Ottawa Police",
        agency_name_fr="Police d'Ottawa",
        landing_page=f"{BASE}/open-data",
        files_base=f"{BASE}/open-data/",
        file_names=list(CORE_FILES),
        first_month="2026-01",
        last_month="2026-11",
        modified=date(2026, 12, 1),
        license_url="https://open.canada.ca/en/open-government-licence-canada",
        contact_email=email,
    )


def dcat_us_validator() -> Draft4Validator:
    folder = STANDARDS / "dcat-us-1.1-non-federal"
    resources = []
    for path in folder.glob("*.json"):
        contents = json.loads(path.read_text())
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        # Referenced by their published URL (the "id") and relative to catalog.json.
        resources.append((contents["id"].rstrip("#"), resource))
    registry: Registry[Any] = Registry().with_resources(resources)
    catalog = json.loads((folder / "catalog.json").read_text())
    return Draft4Validator(
        catalog, registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER
    )


def test_dcat_us_feed_is_valid_against_the_non_federal_schema() -> None:
    for email in ("opendata@police.example.ca", None):
        feed = dcat_us(f"{BASE}/api/feed/dcat-us/1.1.json", [entry(email)])
        errors = [e.message for e in dcat_us_validator().iter_errors(feed)]
        assert errors == []


def test_the_validator_refuses_a_broken_feed() -> None:
    feed = dcat_us(f"{BASE}/api/feed/dcat-us/1.1.json", [entry()])
    del feed["dataset"][0]["accessLevel"]
    feed["dataset"][0]["contactPoint"]["hasEmail"] = "not an address"
    assert len(list(dcat_us_validator().iter_errors(feed))) == 2


def test_dcat_us_dataset_is_bilingual_public_licensed_with_a_distribution_per_file() -> None:
    (dataset,) = dcat_us(f"{BASE}/api/feed/dcat-us/1.1.json", [entry()])["dataset"]
    assert "Caller texts" in dataset["title"] and "Textos aux appelants" in dataset["title"]
    assert "Texts sent" in dataset["description"] and "Textos envoyés" in dataset["description"]
    assert "survey" in dataset["keyword"] and "sondage" in dataset["keyword"]
    assert dataset["accessLevel"] == "public"
    assert dataset["license"] == "https://open.canada.ca/en/open-government-licence-canada"
    assert dataset["modified"] == "2026-12-01"
    assert dataset["temporal"] == "2026-01-01/2026-11-30"
    urls = {d["downloadURL"]: d["mediaType"] for d in dataset["distribution"]}
    assert urls[f"{BASE}/open-data/monthly.csv"] == "text/csv"
    assert urls[f"{BASE}/open-data/datapackage.json"] == "application/json"
    assert len(urls) == len(CORE_FILES)


def shacl(document: dict[str, Any]) -> tuple[bool, str]:
    data = rdflib.Graph().parse(data=json.dumps(document), format="json-ld")
    shapes = rdflib.Graph()
    for name in ("dcat-ap_2.1.1_shacl_shapes.ttl", "dcat-ap_2.1.1_shacl_range.ttl"):
        shapes.parse(STANDARDS / "dcat-ap-2.1.1" / name, format="turtle")
    conforms, _graph, text = pyshacl.validate(data, shacl_graph=shapes, inference="none")
    return bool(conforms), str(text)


def test_dcat_ap_feed_conforms_to_the_shapes_and_ranges() -> None:
    document = dcat_ap(f"{BASE}/api/feed/dcat-ap/2.1.1.json", f"{BASE}/open-data", [entry()])
    conforms, report = shacl(document)
    assert conforms, report


def test_the_shapes_refuse_a_dataset_without_a_description() -> None:
    document = dcat_ap(f"{BASE}/api/feed/dcat-ap/2.1.1.json", f"{BASE}/open-data", [entry()])
    dataset = next(n for n in document["@graph"] if n["@type"] == "dcat:Dataset")
    del dataset["dct:description"]
    conforms, _ = shacl(document)
    assert not conforms
