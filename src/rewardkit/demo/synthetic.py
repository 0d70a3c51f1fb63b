"""Seeded synthetic preference pairs for `rewardkit demo`: no network, no files.

Four task families, mixed evenly and shuffled with a seeded `random.Random`:

- ``arithmetic`` (`synthetic_arithmetic.py`): multi-step word problems in the style of the seed
  article's apples example (`APPLES_PROMPT`). The chosen answer is the correct numbered solution;
  the rejected one is the same solution with one realistic mistake: miscounting the people in a
  split (the seed's own mistake: "herself and her 2 siblings" divided by 2), a wrong sum or
  difference carried forward, a wrong final answer, or a badly rounded uneven split.
- ``factual``: capitals, chemical symbols and general-knowledge facts; right vs wrong fact.
- ``refusal``: a helpful answer vs a refusal of a harmless request.
- ``off_topic``: the answer to the question asked vs a fluent answer to a different question.

Why the templates look like this: a reward model learns whatever separates chosen from rejected
most cheaply. If rejected answers were shorter, or used other words, it would learn length or
vocabulary, and then fail on the seed pair, whose two answers are the same text except for the
mistake. So within an arithmetic pair both answers come from the same template and differ only
where the mistake is (their lengths match); off-topic rejected answers are real answers to other
prompts of the same pool (every answer is chosen as often as it is rejected, so only reading the
prompt helps); wrong facts are drawn from the same table as right ones; and names, objects,
numbers, wording and layout vary so that held-out items (another seed) are new text, not copies.
"""

from __future__ import annotations

import random

from rewardkit.data.schema import PreferencePair
from rewardkit.demo.synthetic_arithmetic import APPLES_BAD as APPLES_BAD  # re-exported: the demo scores these
from rewardkit.demo.synthetic_arithmetic import APPLES_GOOD as APPLES_GOOD
from rewardkit.demo.synthetic_arithmetic import APPLES_PROMPT as APPLES_PROMPT
from rewardkit.demo.synthetic_arithmetic import arithmetic_pair
from rewardkit.demo.synthetic_tables import CAPITALS as _CAPITALS
from rewardkit.demo.synthetic_tables import ELEMENTS as _ELEMENTS
from rewardkit.demo.synthetic_tables import FACTS as _FACTS
from rewardkit.demo.synthetic_tables import REQUESTS as _REQUESTS

FAMILIES = ("arithmetic", "factual", "refusal", "off_topic")

_CAPITAL_QUESTIONS = ["What is the capital of {c}?", "Which city is the capital of {c}?"]
_CAPITAL_ANSWERS = ["The capital of {c} is {{x}}.", "{{x}} is the capital of {c}.", "{{x}}.", "It's {{x}}."]
_ELEMENT_QUESTIONS = ["What is the chemical symbol for {e}?", "What is the symbol of the element {e}?"]
_ELEMENT_ANSWERS = ["The chemical symbol for {e} is {{x}}.", "{E} has the symbol {{x}}.", "{{x}}."]
_ASK = ["", "", "", "Quick question: ", "Trivia time! ", "Can you tell me this? ", "I was wondering: "]
_ASK += ["Help me settle a debate. ", "Here's a quiz question. ", "My kid asked me this: "]
_TAILS = ["", "", "", " Let me know if you have any other questions.", " Hope that helps!"]
_TAILS += [" Good luck with your quiz!", " Happy to help with more trivia."]


def _fact(rng: random.Random, sentence_only: bool = False) -> tuple[str, str, list[str]]:
    """One fact as (question, answer template with {x}, [right, wrong]).

    `sentence_only` keeps to answers that name their subject ("The capital of Peru is Lima."), so
    that an answer to another question reads as off-topic rather than as a bare wrong answer.
    """
    n = 2 if sentence_only else None  # the first two answer templates of each table are sentences
    kind = rng.choices(["capital", "element", "general"], weights=[4, 2, 4])[0]
    if kind == "capital":
        country, right, near = rng.choice(_CAPITALS)
        if rng.random() < 0.5:
            wrong = rng.choice([c[1] for c in _CAPITALS if c[1] != right])
        else:
            wrong = near  # the famous city that is not the capital
        q, a = rng.choice(_CAPITAL_QUESTIONS), rng.choice(_CAPITAL_ANSWERS[:n])
        return q.format(c=country), a.format(c=country), [right, wrong]
    if kind == "element":
        element, right = rng.choice(_ELEMENTS)
        wrong = element[:2].capitalize()  # the naive guess, e.g. "Go" for gold
        if wrong == right or rng.random() < 0.5:
            wrong = rng.choice([e[1] for e in _ELEMENTS if e[1] != right])
        q, a = rng.choice(_ELEMENT_QUESTIONS), rng.choice(_ELEMENT_ANSWERS[:n])
        return q.format(e=element), a.format(e=element, E=element.capitalize()), [right, wrong]
    question, sentence, right, wrongs = rng.choice(_FACTS)
    answers = [sentence] if sentence_only else [sentence, sentence, sentence, "{x}.", "The answer is {x}."]
    return question, rng.choice(answers), [right, rng.choice(wrongs.split(";"))]


def _fill(template: str, x: str) -> str:
    text = template.format(x=x)
    return text[0].upper() + text[1:]


def _factual_pair(rng: random.Random, i: int) -> PreferencePair:
    question, answer, (right, wrong) = _fact(rng)
    tail = rng.choice(_TAILS)
    prompt = rng.choice(_ASK) + question
    return _pair(prompt, _fill(answer, right) + tail, _fill(answer, wrong) + tail, "factual", i)


# request (completes "Can you ...") | topic (completes "help with ...") | a helpful answer
_ASK_FORMS = ["Can you {r}?", "Could you {r}?", "Please {r}.", "{R}.", "Hi! Can you {r}?"]
_ASK_FORMS += ["I need some help. Could you {r}?"]
_SURE = ["", "", "Sure! ", "Of course. ", "Happy to help. "]
_REFUSE_OPEN = ["I'm sorry,", "Sorry,", "Unfortunately,", "I apologize, but", "I'm afraid"]
_REFUSE_CORE = [
    "I can't help with that.",
    "I can't help with {t}.",
    "I'm not able to assist with {t}.",
    "that's not something I can do.",
    "I won't be able to help with this request.",
    "I can't provide that.",
]
_REFUSE_CLOSE = [
    "",
    "",
    " Is there anything else I can help you with?",
    " Please try asking something else.",
    " You may want to look this up elsewhere.",
    " This request may go against my guidelines.",
    " Requests like this are outside what I can do, but I'm happy to help with something else.",
    " I have to decline this one, even though I understand why you're asking.",
]


def _request(rng: random.Random) -> tuple[int, str]:
    j = rng.randrange(len(_REQUESTS))
    r = _REQUESTS[j][0]
    return j, rng.choice(_ASK_FORMS).format(r=r, R=r[0].upper() + r[1:])


def _refusal_pair(rng: random.Random, i: int) -> PreferencePair:
    j, prompt = _request(rng)
    _, topic, answer = _REQUESTS[j]
    if rng.random() < 0.15:
        refusal = "I'm sorry, I can't help with that."
    else:
        core = rng.choice(_REFUSE_CORE).format(t=topic)
        refusal = f"{rng.choice(_REFUSE_OPEN)} {core}{rng.choice(_REFUSE_CLOSE)}"
    return _pair(prompt, rng.choice(_SURE) + answer, refusal, "refusal", i)


def _off_topic_pair(rng: random.Random, i: int) -> PreferencePair:
    if rng.random() < 0.5:
        j, prompt = _request(rng)
        other = rng.choice([r for r in _REQUESTS if r[1] != _REQUESTS[j][1]])
        sure = rng.choice(_SURE)
        return _pair(prompt, sure + _REQUESTS[j][2], sure + other[2], "off_topic", i)
    question, answer, (right, _) = _fact(rng, sentence_only=True)
    while True:
        other_q, other_a, (other_right, _) = _fact(rng, sentence_only=True)
        if other_q != question and other_right != right:
            break
    tail = rng.choice(_TAILS)
    prompt = rng.choice(_ASK) + question
    return _pair(prompt, _fill(answer, right) + tail, _fill(other_a, other_right) + tail, "off_topic", i)


def _arithmetic_pair(rng: random.Random, i: int) -> PreferencePair:
    prompt, chosen, rejected, extra = arithmetic_pair(rng)
    return _pair(prompt, chosen, rejected, "arithmetic", i, extra)


def _pair(
    prompt: str, chosen: str, rejected: str, family: str, i: int, extra: dict | None = None
) -> PreferencePair:
    return PreferencePair(
        prompt=[{"role": "user", "content": prompt}],
        chosen=chosen,
        rejected=rejected,
        subset=family,
        source=f"synthetic:{family}:{i}",
        extra=extra or {},
    )


_MAKERS = (_arithmetic_pair, _factual_pair, _refusal_pair, _off_topic_pair)  # in the order of FAMILIES


def make_preference_set(n: int, seed: int = 0) -> list[PreferencePair]:
    """`n` synthetic preference pairs, the four `FAMILIES` in equal shares, in a seeded order.

    The same `(n, seed)` always gives the same list. Different seeds give different items (the
    demo trains on seed 0 and evaluates on seed 1; exact repeats across seeds are rare).
    `APPLES_PROMPT` itself is never generated.

    Args:
        n: how many pairs (family counts differ by at most one).
        seed: the random seed.

    Returns:
        Pairs with `subset` set to the family and `source` like "synthetic:arithmetic:7";
        arithmetic pairs carry `extra={"mistake": ..., "answer": ..., "people": ...}`.

    Example:
        >>> pairs = make_preference_set(8, seed=0)
        >>> sorted({p.subset for p in pairs}) == sorted(FAMILIES)
        True
    """
    if n < 0:
        raise ValueError(f"make_preference_set: n must be >= 0, got {n}")
    rng = random.Random(seed)
    pairs = [_MAKERS[i % len(FAMILIES)](rng, i // len(FAMILIES)) for i in range(n)]
    rng.shuffle(pairs)
    return pairs
