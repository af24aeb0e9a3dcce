"""The methodology note published with the data, in English and French."""

from __future__ import annotations

from collections.abc import Sequence

from callerconnect.opendata.fields import QuestionInfo


def methodology(
    language: str,
    *,
    agency: str,
    first_month: str,
    last_month: str,
    partial_month: str | None,
    min_responses: int,
    questions: Sequence[QuestionInfo],
) -> str:
    if language == "fr":
        listed = "\n".join(f"- `{q.id}` : {q.text_fr}" for q in questions)
        partial = (
            f"\nLe mois {partial_month} n'est pas terminé : ses chiffres sont publiés tels "
            "qu'ils sont à ce jour et changeront.\n"
            if partial_month
            else ""
        )
        return _FR.format(
            agency=agency,
            first=first_month,
            last=last_month,
            k=min_responses,
            questions=listed,
            partial=partial,
        )
    listed = "\n".join(f"- `{q.id}`: {q.text_en}" for q in questions)
    partial = (
        f"\nThe month {partial_month} is not over: its figures are published as they stand "
        "so far and will change.\n"
        if partial_month
        else ""
    )
    return _EN.format(
        agency=agency,
        first=first_month,
        last=last_month,
        k=min_responses,
        questions=listed,
        partial=partial,
    )


_EN = """# Caller text and survey results — methodology

Publisher: {agency}. Months covered: {first} to {last} (local time).
{partial}
## What is counted

People who call the police about a less urgent matter (priorities 3 and 4) may receive
texts: a confirmation with their case number, a notice when no officer could be sent
within the target time, and after the call a link to a short voluntary survey. Calls
where a text could put someone at risk are never texted and are not in these figures.

Every figure belongs to the local calendar month of the call's first report, to its
dispatch district and to its priority. Texts and survey answers count with their call.

- `calls_texted`: calls whose caller received at least one text;
- `delay_notices`, `surveys_sent`: texts of each kind sent;
- `responses`: surveys answered; `response_rate` = responses / surveys_sent;
- for each survey question, `_share_positive` is the share of its answers that are 4 or
  5 on the 1–5 scale, and `_mean` the mean of its answers. Questions are optional, so a
  question can have fewer answers than there are responses ("no officer attended" is not
  counted as an answer).

Questions:

{questions}

## How respondents are protected

No free text, case number, phone number, call identifier or date finer than a month is
published. Counts of calls and texts describe the service's activity and are published
as they are.

1. **Primary suppression.** A mean or share that stands on fewer than {k} answers is
   written `x`.
2. **Complementary suppression.** The monthly file gives each month's agency-wide
   figures, which are the answer-weighted totals of the district rows. So that no `x`
   can be worked out from them, more figures are written `x`: while any hidden figure
   could still be computed to a single value — checked exactly by linear and integer
   programming, using every published cell, the monthly totals, the limits of each figure (1 to 5,
   0 to 1) and the link between a mean and its share — the published figure with the
   fewest answers in that month is hidden too. If even hiding every district figure is
   not enough (for example every answer of the month was 5), the month's own figure is
   hidden. The check assumes the reader knows the number of answers in every cell.
3. A mean and a share of the same question are hidden together.

An empty cell means "not applicable" (no answers, or no survey sent).

## Publication

A month is published once it is over; publishing the same data again gives the same
files, byte for byte. Late survey answers for an earlier month are included when that
month is published again.
"""

_FR = """# Textos aux appelants et résultats du sondage — méthodologie

Éditeur : {agency}. Mois couverts : de {first} à {last} (heure locale).
{partial}
## Ce qui est compté

Les personnes qui appellent la police pour une affaire moins urgente (priorités 3 et 4)
peuvent recevoir des textos : une confirmation avec leur numéro de dossier, un avis
lorsqu'aucun policier n'a pu être envoyé dans le délai cible et, après l'appel, le lien
vers un court sondage facultatif. Les appels où un texto pourrait mettre quelqu'un en
danger ne reçoivent jamais de texto et ne figurent pas dans ces chiffres.

Chaque chiffre est rattaché au mois civil local du premier signalement de l'appel, à son
district de répartition et à sa priorité. Les textos et les réponses comptent avec leur
appel.

- `calls_texted` : appels dont l'appelant a reçu au moins un texto;
- `delay_notices`, `surveys_sent` : textos de chaque type envoyés;
- `responses` : sondages remplis; `response_rate` = responses / surveys_sent;
- pour chaque question, `_share_positive` est la part de ses réponses égales à 4 ou 5
  sur l'échelle de 1 à 5, et `_mean` la moyenne de ses réponses. Les questions sont
  facultatives : une question peut avoir moins de réponses que de sondages remplis
  (« aucun policier ne s'est présenté » ne compte pas comme une réponse).

Questions :

{questions}

## Protection des répondants

Aucun texte libre, numéro de dossier, numéro de téléphone, identifiant d'appel ni date
plus fine que le mois n'est publié. Les nombres d'appels et de textos décrivent
l'activité du service et sont publiés tels quels.

1. **Suppression primaire.** Une moyenne ou une part qui repose sur moins de {k}
   réponses est écrite `x`.
2. **Suppression complémentaire.** Le fichier mensuel donne les chiffres de tout le
   service pour chaque mois, qui sont les totaux pondérés des lignes par district. Pour
   qu'aucun `x` ne puisse en être déduit, d'autres chiffres sont écrits `x` : tant qu'un
   chiffre caché pourrait encore être calculé à une seule valeur — vérifié exactement
   par programmation linéaire et en nombres entiers, avec toutes les cellules publiées,
   les totaux mensuels, les bornes de chaque chiffre (1 à 5, 0 à 1) et le lien entre une
   moyenne et sa part — le chiffre publié reposant sur le moins de réponses ce mois-là
   est caché lui aussi. Si cacher tous les chiffres par district ne suffit pas (par
   exemple toutes les réponses du mois valent 5), le chiffre du mois lui-même est caché.
   La vérification suppose que le lecteur connaît le nombre de réponses de chaque
   cellule.
3. La moyenne et la part d'une même question sont cachées ensemble.

Une cellule vide signifie « sans objet » (aucune réponse, ou aucun sondage envoyé).

## Publication

Un mois est publié une fois terminé; publier de nouveau les mêmes données donne les
mêmes fichiers, octet pour octet. Les réponses tardives d'un mois antérieur sont
incluses lorsque ce mois est publié de nouveau.
"""
