"""The RAG-shaped work the routing scenario sends: deterministic (seeded), the same for every
target, so each target's prefix-cache figures compare with the one-replica reference's.

One instruction template (a system message) opens every request; sets of retrieved documents
are each asked several questions, spread over the run and interleaved with the other sets (as
many users asking about the same popular documents); multi-turn conversations re-send their
history with the previous assistant answer. Each prompt is template, history, documents,
question. Text is drawn from words the tiny model's tokenizer knows well (about 3.5 characters
a token), so the longest prompt stays near 1,300 tokens, under VLLM_MAX_MODEL_LEN (2048).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = 25

TEMPLATE = (
    "You are the assistant of the model server team. Answer the question of the user with the "
    "documents given below and with nothing else. Read every document before you answer. When "
    "two documents say different things, tell the user which document says what, and prefer the "
    "newer one. Name the documents you used by their number, in the form [1] or [2]. Keep the "
    "answer short: one to three sentences, plain words, no lists unless the user asks for one. "
    "If the documents do not hold the answer, say so in one sentence and do not guess; never "
    "make up numbers, names or dates that are not in the documents. When the question is about "
    "latency, throughput, memory or cache, give the figure and its unit as the document states "
    "it. When the question asks how to do something, give the steps in order. Do not repeat the "
    "question, do not greet the user, and do not apologise. Write in the language of the user. "
    "The documents follow, then the question."
)

# The words the tiny model's tokenizer was trained on (model_server/tiny_model.py), so that it
# encodes them in few tokens.
WORDS = (  # noqa: SIM905 - a sentence reads better than a list of 80 strings
    "the model server answers every request with tokens generated on intel xeon cpus and gaudi "
    "accelerators while the microservice streams them to clients who ask questions about "
    "documents retrieval augmented generation quantization calibration measurements kernels "
    "throughput latency memory cache attention layers weights prompts completions chat system "
    "user assistant hello world what is deep learning tell me a story about a fast cat and a "
    "slow dog running under the blue sky near green trees one two three four five six seven "
    "eight nine"
).split()


@dataclass(frozen=True, slots=True)
class Shape:
    """How much work: the default is the benchmark's; tests pass a smaller one."""

    template_chars: int = len(TEMPLATE)
    sets: int = 24  # sets of retrieved documents
    questions: int = 4  # questions asked of each set, and turns of each conversation
    conversations: int = 8
    documents: tuple[int, int] = (3, 5)  # documents per set, lowest and highest
    set_chars: tuple[int, int] = (1500, 3000)  # characters of one set, lowest and highest


BENCH = Shape()


@dataclass(frozen=True, slots=True)
class Ask:
    """One request of the work. A conversation's turn lists its earlier turns (``earlier``, by
    index, oldest first): their questions and answers make its history, so it is sent only
    once the last of them was answered."""

    index: int
    documents: str
    question: str
    earlier: tuple[int, ...] = ()

    @property
    def after(self) -> int | None:
        return self.earlier[-1] if self.earlier else None


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
    return " ".join(words).capitalize() + "."


def _text(rng: random.Random, chars: int) -> str:
    out = ""
    while len(out) < chars:
        out += _sentence(rng) + " "
    return out[:chars].rstrip()


def _document_set(rng: random.Random, shape: Shape, number: int) -> str:
    count = rng.randint(*shape.documents)
    total = rng.randint(*shape.set_chars)
    parts = [f"[{i + 1}] {_text(rng, total // count)}" for i in range(count)]
    return f"Documents of set {number}:\n" + "\n".join(parts)


def _question(rng: random.Random) -> str:
    return "Question: what " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))) + "?"


def build(shape: Shape = BENCH) -> list[Ask]:
    """The asks in the order they are sent: for each question number, every document set once
    (in a seeded order of its own), then that turn of every conversation."""
    rng = random.Random(SEED)
    sets = [_document_set(rng, shape, n + 1) for n in range(shape.sets)]
    asked = [[_question(rng) for _ in range(shape.questions)] for _ in sets]
    talks = [[_question(rng) for _ in range(shape.questions)] for _ in range(shape.conversations)]
    talk_sets = [rng.randrange(len(sets)) for _ in talks]
    asks: list[Ask] = []
    turns: list[list[int]] = [[] for _ in talks]
    for number in range(shape.questions):
        order = list(range(len(sets)))
        rng.shuffle(order)
        for s in order:
            asks.append(Ask(len(asks), sets[s], asked[s][number]))
        for c, questions in enumerate(talks):
            asks.append(Ask(len(asks), sets[talk_sets[c]], questions[number], tuple(turns[c])))
            turns[c].append(asks[-1].index)
    return asks


def template(shape: Shape, salt: str) -> str:
    """The system message: the salt first, so that no KV block of one segment's work matches
    another's (each block's hash chains over every token before it)."""
    return f"Session {salt}. " + TEMPLATE[: shape.template_chars]


def messages(
    ask: Ask, asks: list[Ask], system: str, answers: dict[int, str]
) -> list[dict[str, str]]:
    """The OpenAI messages: template, history (each earlier turn's question and answer), then
    the documents and the question in one user message."""
    out = [{"role": "system", "content": system}]
    for index in ask.earlier:
        out.append({"role": "user", "content": asks[index].question})
        out.append({"role": "assistant", "content": answers.get(index, "")})
    out.append({"role": "user", "content": f"{ask.documents}\n\n{ask.question}"})
    return out
