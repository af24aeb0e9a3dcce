"""Reason codes in plain words, English and French, for people reading the dashboard,
``calls show`` and the daily report.

A code is ``eligible`` or ``<kind>:<detail>`` (``ineligible:priority``,
``excluded:sexual_assault``, ``held:changed_event``, ``suppressed:stale`` ...; see
``domain/policy.py``). The read side adds ``text:<status>`` for a call whose latest text is
still waiting or failed, and ``eligible:no_text`` for an eligible call with no text yet.
A code without a label here is shown as the code itself rather than guessed at.
"""

from __future__ import annotations

_LABELS: dict[str, tuple[str, str]] = {
    "eligible": ("eligible for texts", "admissible aux textos"),
    "new": ("not assessed yet", "pas encore évalué"),
    "eligible:no_text": ("eligible, no text due yet", "admissible, aucun texto encore dû"),
    "ineligible:priority": ("priority not texted", "priorité non visée"),
    "ineligible:no_priority": ("no priority given", "aucune priorité indiquée"),
    "ineligible:no_call_type": ("no call type given", "aucun type d'appel indiqué"),
    "ineligible:unknown_call_type": (
        "call type unknown (to be mapped by an administrator)",
        "type d'appel inconnu (à associer par un administrateur)",
    ),
    "ineligible:merged": ("merged into another call", "fusionné avec un autre appel"),
    "ineligible:cancelled": ("call cancelled", "appel annulé"),
    "ineligible:risk_flag": (
        "dispatcher flagged a risk",
        "risque signalé par le répartiteur",
    ),
    "ineligible:in_progress": ("crime or threat in progress", "crime ou menace en cours"),
    "ineligible:opted_out": ("caller declined texts", "l'appelant a refusé les textos"),
    "ineligible:no_phone": ("no phone number", "aucun numéro de téléphone"),
    "ineligible:invalid_phone": ("phone number unusable", "numéro de téléphone inutilisable"),
    "held:unreadable_event": (
        "held: an event about it could not be read",
        "retenu : un événement à son sujet était illisible",
    ),
    "held:changed_event": (
        "held: an event id came back with other content",
        "retenu : un identifiant d'événement est revenu avec un autre contenu",
    ),
    "held:merged_protected_call": (
        "held: merged with a protected call",
        "retenu : fusionné avec un appel protégé",
    ),
    "held:conflicting_event_id": (
        "held: an event for it reused another incident's event id",
        "retenu : un événement à son sujet réutilisait l'identifiant d'un autre incident",
    ),
    "held:event_time_ahead": (
        "held: an event about it was stamped ahead of its receipt",
        "retenu : un événement à son sujet était daté après sa réception",
    ),
    "ineligible:priority_out_of_order": (
        "a priority not texted arrived after a later-stamped one",
        "une priorité non visée est arrivée après une autre datée plus tard",
    ),
    "ineligible:call_type_out_of_order": (
        "an unknown call type arrived after a later-stamped one",
        "un type d'appel inconnu est arrivé après un autre daté plus tard",
    ),
    "suppressed:stale": ("text too late to be useful", "texto trop tardif pour être utile"),
    "suppressed:no_agency": (
        "its agency is no longer configured",
        "son service de police n'est plus configuré",
    ),
    "suppressed:dispatched": ("unit already dispatched", "unité déjà dépêchée"),
    "suppressed:not_cleared": ("call not cleared", "appel non terminé"),
    "suppressed:reclassified": (
        "reclassified as a call not texted",
        "reclassé en appel non visé par les textos",
    ),
    "suppressed:no_case_number": ("no case number to quote", "aucun numéro de dossier à citer"),
    "suppressed:unquotable_case_number": (
        "case number cannot be quoted",
        "numéro de dossier impossible à citer",
    ),
    "suppressed:no_delay_threshold": (
        "no delay target for this priority",
        "aucun délai cible pour cette priorité",
    ),
    "suppressed:opted_out": ("caller answered STOP", "l'appelant a répondu STOP"),
    "suppressed:daily_cap": (
        "daily text limit for this phone reached",
        "limite quotidienne de textos atteinte pour ce numéro",
    ),
    "suppressed:own_number": ("the number is our own", "le numéro est le nôtre"),
    "suppressed:protected_number": (
        "number protected after a call at risk",
        "numéro protégé après un appel à risque",
    ),
    "text:scheduled": ("text waiting to be sent", "texto en attente d'envoi"),
    "text:sending": ("text being sent", "texto en cours d'envoi"),
    "text:failed": ("text failed", "échec du texto"),
    "text:cancelled": ("text cancelled", "texto annulé"),
    "text:suppressed": ("text withheld", "texto retenu"),
}

#: Call-type categories that are never texted (``data/call-types.csv``).
_EXCLUDED: dict[str, tuple[str, str]] = {
    "sexual_assault": ("sexual assault", "agression sexuelle"),
    "intimate_partner_violence": (
        "intimate partner violence",
        "violence entre partenaires intimes",
    ),
    "abduction": ("abduction", "enlèvement"),
    "bomb_threat": ("bomb threat", "alerte à la bombe"),
    "alarm": ("alarm", "alarme"),
    "demonstration": ("demonstration", "manifestation"),
}


def reason_label(code: str, language: str = "en") -> str:
    """``code`` in plain words in ``language`` (``en`` or ``fr``; anything else is English)."""
    index = 1 if language == "fr" else 0
    if code in _LABELS:
        return _LABELS[code][index]
    kind, _, detail = code.partition(":")
    if kind == "excluded":
        category = _EXCLUDED.get(detail, (detail.replace("_", " "),) * 2)[index]
        return ("type d'appel exclu : " if index else "excluded call type: ") + category
    if kind == "suppressed" and f"ineligible:{detail}" in _LABELS:
        # A pending text cancelled when the call became ineligible carries that reason.
        return _LABELS[f"ineligible:{detail}"][index]
    return code
