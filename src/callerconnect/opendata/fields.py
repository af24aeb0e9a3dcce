"""What each published column is: its type, its constraints, and what it means in English
and French. One list feeds the Frictionless table schemas, the data dictionary and the
page, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from callerconnect.opendata.tables import SUPPRESSED

MISSING_VALUES = ["", SUPPRESSED]
"""Written in a cell: empty = not applicable, ``x`` = suppressed (too few answers)."""


@dataclass(frozen=True)
class QuestionInfo:
    """A scale question of the survey, as the open data describes it."""

    id: str
    text_en: str
    text_fr: str


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    description_en: str
    description_fr: str
    constraints: dict[str, Any] = field(default_factory=dict)
    decimals: int | None = None
    """How many decimals a number is written with (the same on every run)."""

    def table_schema(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "description": f"{self.description_en} / {self.description_fr}",
        }
        if self.constraints:
            described["constraints"] = self.constraints
        return described


_KEY = [
    Field(
        "month",
        "yearmonth",
        "Local calendar month of the call (YYYY-MM).",
        "Mois civil local de l'appel (AAAA-MM).",
        {"required": True},
    ),
]
_CELL_KEY = [
    Field(
        "district",
        "string",
        "Dispatch district or division of the call.",
        "District ou division de répartition de l'appel.",
        {"required": True, "minLength": 1},
    ),
    Field(
        "priority",
        "integer",
        "Priority given to the call by the police service (lower is more urgent).",
        "Priorité attribuée à l'appel par le service de police (plus bas = plus urgent).",
        {"required": True, "minimum": 1, "maximum": 5},
    ),
]
_COUNTS = [
    Field(
        "calls_texted",
        "integer",
        "Calls whose caller received at least one text.",
        "Appels dont l'appelant a reçu au moins un texto.",
        {"required": True, "minimum": 0},
    ),
    Field(
        "delay_notices",
        "integer",
        "Delay notices sent (no unit dispatched within the priority's target).",
        "Avis de délai envoyés (aucune unité affectée dans le délai cible de la priorité).",
        {"required": True, "minimum": 0},
    ),
    Field(
        "surveys_sent",
        "integer",
        "Survey invitations sent after the call was cleared.",
        "Invitations au sondage envoyées après la fermeture de l'appel.",
        {"required": True, "minimum": 0},
    ),
    Field(
        "responses",
        "integer",
        "Surveys answered.",
        "Sondages remplis.",
        {"required": True, "minimum": 0},
    ),
    Field(
        "response_rate",
        "number",
        "responses / surveys_sent; empty when no survey was sent.",
        "responses / surveys_sent; vide si aucun sondage n'a été envoyé.",
        {"minimum": 0},
        decimals=4,
    ),
]

_SUPPRESSION_EN = "x when it stands on too few answers; empty when nobody answered."
_SUPPRESSION_FR = "x si trop peu de réponses; vide si personne n'a répondu."


def question_fields(question: QuestionInfo) -> list[Field]:
    return [
        Field(
            f"{question.id}_share_positive",
            "number",
            f"Share of answers of 4 or 5 (from 0 to 1) to: {question.text_en} {_SUPPRESSION_EN}",
            f"Part des réponses de 4 ou 5 (de 0 à 1) à : {question.text_fr} {_SUPPRESSION_FR}",
            {"minimum": 0, "maximum": 1},
            decimals=4,
        ),
        Field(
            f"{question.id}_mean",
            "number",
            f"Mean of the 1–5 answers to: {question.text_en} {_SUPPRESSION_EN}",
            f"Moyenne des réponses de 1 à 5 à : {question.text_fr} {_SUPPRESSION_FR}",
            {"minimum": 1, "maximum": 5},
            decimals=2,
        ),
    ]


def by_district_fields(questions: Sequence[QuestionInfo]) -> list[Field]:
    return [*_KEY, *_CELL_KEY, *_COUNTS, *(f for q in questions for f in question_fields(q))]


def monthly_fields(questions: Sequence[QuestionInfo]) -> list[Field]:
    return [*_KEY, *_COUNTS, *(f for q in questions for f in question_fields(q))]


DICTIONARY_FIELDS = [
    Field(name, "string", en, fr, {"required": True})
    for name, en, fr in (
        ("resource", "File the field belongs to.", "Fichier auquel appartient le champ."),
        ("field", "Column name.", "Nom de la colonne."),
        ("type", "Table Schema type of the column.", "Type Table Schema de la colonne."),
        ("description_en", "What the column means, in English.", "Sens de la colonne, en anglais."),
        ("description_fr", "What the column means, in French.", "Sens de la colonne, en français."),
    )
]


def table_schema(fields: Sequence[Field], primary_key: Sequence[str]) -> dict[str, Any]:
    return {
        "fields": [f.table_schema() for f in fields],
        "missingValues": MISSING_VALUES,
        "primaryKey": list(primary_key),
    }
