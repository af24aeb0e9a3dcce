"""The open-data catalog, for portals to harvest: DCAT-US 1.1 (the ``data.json`` shape an
ArcGIS Hub site serves and CKAN's DCAT harvester reads) and the same catalog as DCAT-AP
2.1.1 JSON-LD. Pure: built from what a publication says about itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from callerconnect.opendata.package import (
    KEYWORDS_EN,
    KEYWORDS_FR,
    TITLE_EN,
    TITLE_FR,
    media_type,
)

POD_SCHEMA = "https://project-open-data.cio.gov/v1.1/schema"
FREQUENCY_MONTHLY = "http://publications.europa.eu/resource/authority/frequency/MONTHLY"
LANGUAGES = {
    "en": "http://publications.europa.eu/resource/authority/language/ENG",
    "fr": "http://publications.europa.eu/resource/authority/language/FRA",
}


@dataclass(frozen=True)
class CatalogEntry:
    """One agency's dataset: its latest publication and where its files are served."""

    agency_id: str
    agency_name_en: str
    agency_name_fr: str
    landing_page: str
    files_base: str
    """URL the file names are appended to (``…/open-data/`` or ``…/open-data/<agency>/``)."""
    file_names: Sequence[str]
    first_month: str
    last_month: str
    modified: date
    license_url: str
    contact_email: str | None

    @property
    def title(self) -> str:
        return f"{TITLE_EN} — {self.agency_name_en} / {TITLE_FR} — {self.agency_name_fr}"

    @property
    def description_en(self) -> str:
        return (
            f"Texts sent by {self.agency_name_en} to people who called about less urgent "
            "matters, and their survey answers, by month, district and priority; "
            "aggregated, with small cells suppressed."
        )

    @property
    def description_fr(self) -> str:
        return (
            f"Textos envoyés par {self.agency_name_fr} aux personnes ayant appelé pour une "
            "affaire moins urgente, et leurs réponses au sondage, par mois, district et "
            "priorité; données agrégées, petites cellules supprimées."
        )

    @property
    def identifier(self) -> str:
        return f"{self.landing_page}#{self.agency_id}"

    @property
    def temporal(self) -> tuple[str, str]:
        year, month = (int(p) for p in self.last_month.split("-"))
        following = date(year + month // 12, month % 12 + 1, 1)
        last_day = date.fromordinal(following.toordinal() - 1)
        return f"{self.first_month}-01", last_day.isoformat()


def dcat_us(catalog_url: str, entries: Sequence[CatalogEntry]) -> dict[str, Any]:
    return {
        "@context": f"{POD_SCHEMA}/catalog.jsonld",
        "@id": catalog_url,
        "@type": "dcat:Catalog",
        "conformsTo": POD_SCHEMA,
        "describedBy": f"{POD_SCHEMA}/catalog.json",
        "dataset": [_us_dataset(entry) for entry in entries],
    }


def _us_dataset(entry: CatalogEntry) -> dict[str, Any]:
    contact: dict[str, Any] = {
        "@type": "vcard:Contact",
        "fn": f"{entry.agency_name_en} / {entry.agency_name_fr}",
    }
    if entry.contact_email:
        contact["hasEmail"] = f"mailto:{entry.contact_email}"
    start, end = entry.temporal
    return {
        "@type": "dcat:Dataset",
        "title": entry.title,
        "description": f"{entry.description_en}\n\n{entry.description_fr}",
        "keyword": KEYWORDS_EN + [k for k in KEYWORDS_FR if k not in KEYWORDS_EN],
        "modified": entry.modified.isoformat(),
        "publisher": {"@type": "org:Organization", "name": entry.agency_name_en},
        "contactPoint": contact,
        "identifier": entry.identifier,
        "accessLevel": "public",
        "license": entry.license_url,
        "landingPage": entry.landing_page,
        "language": ["en-CA", "fr-CA"],
        "temporal": f"{start}/{end}",
        "accrualPeriodicity": "R/P1M",
        "distribution": [
            {
                "@type": "dcat:Distribution",
                "title": name,
                "downloadURL": entry.files_base + name,
                "mediaType": media_type(name),
                "format": name.rsplit(".", 1)[1].upper(),
            }
            for name in entry.file_names
        ],
    }


_CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def _both(en: str, fr: str) -> list[dict[str, str]]:
    return [{"@value": en, "@language": "en"}, {"@value": fr, "@language": "fr"}]


def _date(value: str) -> dict[str, str]:
    return {"@value": value, "@type": "xsd:date"}


def dcat_ap(catalog_url: str, landing_page: str, entries: Sequence[CatalogEntry]) -> dict[str, Any]:
    graph: list[dict[str, Any]] = []
    publishers = []
    for entry in entries:
        publisher = f"{entry.landing_page}#publisher-{entry.agency_id}"
        publishers.append(publisher)
        graph.append(
            {
                "@id": publisher,
                "@type": "foaf:Agent",
                "foaf:name": _both(entry.agency_name_en, entry.agency_name_fr),
            }
        )
        graph.append(_ap_dataset(entry, publisher))
    catalog: dict[str, Any] = {
        "@id": catalog_url,
        "@type": "dcat:Catalog",
        "dct:title": _both(f"{TITLE_EN} — open data", f"{TITLE_FR} — données ouvertes"),
        "dct:description": _both(
            "Open data of the caller texts and survey.",
            "Données ouvertes des textos aux appelants et du sondage.",
        ),
        "foaf:homepage": {"@id": landing_page, "@type": "foaf:Document"},
        "dcat:dataset": [{"@id": entry.identifier} for entry in entries],
    }
    if publishers:
        catalog["dct:publisher"] = {"@id": publishers[0]}
    graph.insert(0, catalog)
    return {"@context": _CONTEXT, "@graph": graph}


def _ap_dataset(entry: CatalogEntry, publisher: str) -> dict[str, Any]:
    contact: dict[str, Any] = {
        "@type": ["vcard:Kind", "vcard:Organization"],
        "vcard:fn": f"{entry.agency_name_en} / {entry.agency_name_fr}",
    }
    if entry.contact_email:
        contact["vcard:hasEmail"] = {"@id": f"mailto:{entry.contact_email}"}
    start, end = entry.temporal
    license_document = {"@id": entry.license_url, "@type": "dct:LicenseDocument"}
    return {
        "@id": entry.identifier,
        "@type": "dcat:Dataset",
        "dct:title": _both(
            f"{TITLE_EN} — {entry.agency_name_en}", f"{TITLE_FR} — {entry.agency_name_fr}"
        ),
        "dct:description": _both(entry.description_en, entry.description_fr),
        "dcat:keyword": [{"@value": k, "@language": "en"} for k in KEYWORDS_EN]
        + [{"@value": k, "@language": "fr"} for k in KEYWORDS_FR],
        "dct:identifier": entry.identifier,
        "dct:modified": _date(entry.modified.isoformat()),
        "dct:publisher": {"@id": publisher},
        "dcat:contactPoint": contact,
        "dcat:landingPage": {"@id": entry.landing_page, "@type": "foaf:Document"},
        "dct:language": [
            {"@id": uri, "@type": "dct:LinguisticSystem"} for uri in LANGUAGES.values()
        ],
        "dct:accrualPeriodicity": {"@id": FREQUENCY_MONTHLY, "@type": "dct:Frequency"},
        "dct:temporal": {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _date(start),
            "dcat:endDate": _date(end),
        },
        "dcat:distribution": [
            {
                "@type": "dcat:Distribution",
                "dct:title": _both(name, name),
                "dcat:accessURL": {"@id": entry.files_base + name},
                "dcat:downloadURL": {"@id": entry.files_base + name},
                "dcat:mediaType": {
                    "@id": f"http://www.iana.org/assignments/media-types/{media_type(name)}",
                    "@type": "dct:MediaType",
                },
                "dct:license": license_document,
            }
            for name in entry.file_names
        ],
    }
