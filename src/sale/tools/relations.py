"""A relation lookup over one PhantomWiki universe (the deep-search agents' third tool).

    graph = FamilyGraph.from_universe("train")
    graph.lookup("grandmother of Elicia Barbee")        -> "The grandmother of Elicia Barbee: Allie Barbee, ..."
    graph.lookup("hobby of Ann Lee, Bob Lee")            -> one line per person
    graph.lookup("person whose hobby is cribbage")      -> the people with that attribute value

What the tool knows is only what the articles state: each article's family lines (mother, father, sons,
daughters, wife, husband; siblings are derived from shared parents), its friends and its attributes. Relations
the articles do not spell out (grandparent, cousin, sister-in-law, ...) are composed from those facts with
PhantomWiki's own rules (phantom-wiki's `rules_base.pl` and `rules_derived.pl`, e.g. a grandparent is a parent of
a parent, an aunt is a sister of a parent, a sister-in-law is a sister of a spouse), so one lookup follows one
relation word of a question, as a reader who knows what "sister-in-law" means would. Given a chain
("grandparent of the nephew of Carl Peace"), it resolves the innermost relation only and says so: one hop per
lookup, so a trace is as long as its question. The agent still has to
break the question into its chain of relations, resolve them innermost first, and carry the names from one step
to the next (**our choice**: tests/test_relations.py checks that following a question's chain with this tool
gives PhantomWiki's gold answers on the train universe).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from sale.tasks.phantomwiki import read_articles

ATTRIBUTES = ("date of birth", "occupation", "hobby", "gender")
LINE = "^The (.+) of {person} (?:is|are) (.+)\\.$"  # a fact line of the article about {person}
# Irregular and compound plurals; other plurals drop a final "s".
PLURALS = {
    "children": "child",
    "grandchildren": "grandchild",
    "great-grandchildren": "great-grandchild",
    "wives": "wife",
    "people": "person",
    "parents-in-law": "parent-in-law",
    "sons-in-law": "son-in-law",
    "daughters-in-law": "daughter-in-law",
    "mothers-in-law": "mother-in-law",
    "fathers-in-law": "father-in-law",
    "sisters-in-law": "sister-in-law",
    "brothers-in-law": "brother-in-law",
    "first cousins once removed": "first cousin once removed",
}


def singular(word: str) -> str:
    word = " ".join(word.lower().replace("_", " ").split())
    word = re.sub(r"\s*-\s*", "-", word)
    for plural, single in PLURALS.items():
        if word.endswith(plural):
            return word[: -len(plural)] + single
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


class FamilyGraph:
    _cache: dict[str, "FamilyGraph"] = {}

    def __init__(self, articles: list[dict]):
        self.people = [a["title"] for a in articles]
        self.attrs: dict[str, dict[str, str]] = {p: {} for p in self.people}
        self.parents: dict[str, set[str]] = defaultdict(set)
        self.children: dict[str, set[str]] = defaultdict(set)
        self.spouses: dict[str, set[str]] = defaultdict(set)
        self.friends: dict[str, set[str]] = defaultdict(set)
        for a in articles:
            person = a["title"]
            line_re = re.compile(LINE.format(person=re.escape(person)))
            for line in a["article"].splitlines():
                m = line_re.match(line.strip())
                if not m:
                    continue
                rel, names = m.group(1).lower(), [n.strip() for n in m.group(2).split(",") if n.strip()]
                if rel in ATTRIBUTES:
                    self.attrs[person][rel] = m.group(2).strip()
                elif rel in ("mother", "father"):
                    for n in names:
                        self.parents[person].add(n)
                        self.children[n].add(person)
                elif singular(rel) in ("son", "daughter"):
                    for n in names:
                        self.children[person].add(n)
                        self.parents[n].add(person)
                elif rel in ("wife", "husband"):
                    for n in names:
                        self.spouses[person].add(n)
                        self.spouses[n].add(person)
                elif singular(rel) == "friend":
                    for n in names:
                        self.friends[person].add(n)
                        self.friends[n].add(person)
        self._folded = {" ".join(p.lower().split()): p for p in self.people}

    @classmethod
    def from_universe(cls, name: str) -> "FamilyGraph":
        if name not in cls._cache:
            cls._cache[name] = cls(read_articles(name))
        return cls._cache[name]

    # ------------------------------------------------------------------ PhantomWiki's rules, Y is the R of X
    def gender(self, p: str) -> str:
        return self.attrs.get(p, {}).get("gender", "")

    def _female(self, ps):
        return {p for p in ps if self.gender(p) == "female"}

    def _male(self, ps):
        return {p for p in ps if self.gender(p) == "male"}

    def _step(self, ps, fn):
        out: set[str] = set()
        for p in ps:
            out |= fn(p)
        return out

    def siblings(self, x: str) -> set[str]:
        return self._step(self.parents[x], lambda a: self.children[a]) - {x}

    def grandparents(self, x: str) -> set[str]:
        return self._step(self.parents[x], lambda z: self.parents[z])

    def grandchildren(self, x: str) -> set[str]:
        return self._step(self.children[x], lambda z: self.children[z])

    def great_grandparents(self, x: str) -> set[str]:
        return self._step(self.grandparents(x), lambda z: self.parents[z])

    def great_grandchildren(self, x: str) -> set[str]:
        return self._step(self.grandchildren(x), lambda z: self.children[z])

    def cousins(self, x: str) -> set[str]:
        out: set[str] = set()
        for a in self.parents[x]:
            for b in self.siblings(a):
                out |= self.children[b]
        return out - {x}

    def relation(self, x: str, rel: str) -> set[str] | None:
        """The people who are the `rel` of x (a singular relation word), or None for a word the tool lacks."""
        f, m, step = self._female, self._male, self._step
        base = {
            "parent": lambda: set(self.parents[x]),
            "mother": lambda: f(self.parents[x]),
            "father": lambda: m(self.parents[x]),
            "child": lambda: set(self.children[x]),
            "son": lambda: m(self.children[x]),
            "daughter": lambda: f(self.children[x]),
            "sibling": lambda: self.siblings(x),
            "sister": lambda: f(self.siblings(x)),
            "brother": lambda: m(self.siblings(x)),
            "spouse": lambda: set(self.spouses[x]),
            "wife": lambda: f(self.spouses[x]),
            "husband": lambda: m(self.spouses[x]),
            "friend": lambda: set(self.friends[x]),
            "grandparent": lambda: self.grandparents(x),
            "grandmother": lambda: f(self.grandparents(x)),
            "grandfather": lambda: m(self.grandparents(x)),
            "grandchild": lambda: self.grandchildren(x),
            "granddaughter": lambda: f(self.grandchildren(x)),
            "grandson": lambda: m(self.grandchildren(x)),
            "great-grandparent": lambda: self.great_grandparents(x),
            "great-grandmother": lambda: f(self.great_grandparents(x)),
            "great-grandfather": lambda: m(self.great_grandparents(x)),
            "great-grandchild": lambda: self.great_grandchildren(x),
            "great-granddaughter": lambda: f(self.great_grandchildren(x)),
            "great-grandson": lambda: m(self.great_grandchildren(x)),
            "aunt": lambda: step(self.parents[x], lambda a: f(self.siblings(a))),
            "uncle": lambda: step(self.parents[x], lambda a: m(self.siblings(a))),
            "great-aunt": lambda: step(self.grandparents(x), lambda a: f(self.siblings(a))),
            "great-uncle": lambda: step(self.grandparents(x), lambda a: m(self.siblings(a))),
            "second aunt": lambda: step(self.great_grandparents(x), lambda a: f(self.siblings(a))),
            "second uncle": lambda: step(self.great_grandparents(x), lambda a: m(self.siblings(a))),
            "niece": lambda: step(self.siblings(x), lambda a: f(self.children[a])),
            "nephew": lambda: step(self.siblings(x), lambda a: m(self.children[a])),
            "cousin": lambda: self.cousins(x),
            "female cousin": lambda: f(self.cousins(x)),
            "male cousin": lambda: m(self.cousins(x)),
            "second cousin": lambda: (
                step(self.parents[x], lambda a: step(self.cousins(a), lambda b: self.children[b])) - {x}
            ),
            "female first cousin once removed": lambda: step(self.cousins(x), lambda a: f(self.children[a])) - {x},
            "male first cousin once removed": lambda: step(self.cousins(x), lambda a: m(self.children[a])) - {x},
            "first cousin once removed": lambda: step(self.cousins(x), lambda a: self.children[a]) - {x},
            "parent-in-law": lambda: step(self.spouses[x], lambda a: self.parents[a]),
            "mother-in-law": lambda: step(self.spouses[x], lambda a: f(self.parents[a])),
            "father-in-law": lambda: step(self.spouses[x], lambda a: m(self.parents[a])),
            "son-in-law": lambda: step(self.children[x], lambda a: m(self.spouses[a])),
            "daughter-in-law": lambda: step(self.children[x], lambda a: f(self.spouses[a])),
            "sister-in-law": lambda: step(self.spouses[x], lambda a: f(self.siblings(a))),
            "brother-in-law": lambda: step(self.spouses[x], lambda a: m(self.siblings(a))),
        }
        base["female second cousin"] = lambda: f(base["second cousin"]())
        base["male second cousin"] = lambda: m(base["second cousin"]())
        fn = base.get(rel)
        return None if fn is None else fn()

    RELATIONS: tuple[str, ...] = ()  # filled below: the relation words the tool knows

    # ------------------------------------------------------------------ the tool
    def person(self, name: str) -> str | None:
        name = re.sub(r"^(the|a|an)\s+", "", name.strip().strip("\"'`.").strip(), flags=re.IGNORECASE)
        return self._folded.get(" ".join(name.lower().split()))

    def lookup(self, query: str) -> str:
        return self.query(query).text

    def query(self, query: str) -> "Lookup":
        """Answer `<relation or attribute> of <Name>[, <Name> ...]` or `person whose <attribute> is <value>`."""
        q = " ".join(query.strip().strip("\"'`").rstrip("?.").split())
        q = re.sub(r"^(the|a|an)\s+", "", q, flags=re.IGNORECASE)
        m = re.match(
            r"^(?:person|people)\s+(?:whose|with)\s+(.+?)\s+(?:is|are|=)\s+(.+)$", q, re.IGNORECASE
        ) or re.match(r"^(date of birth|occupation|hobby|gender)\s+(?:is|=)\s+(.+)$", q, re.IGNORECASE)
        if m:
            attr, value = singular(m.group(1)), m.group(2).strip().strip("\"'`").lower()
            if attr not in ATTRIBUTES:
                return Lookup(f"Unknown attribute {m.group(1)!r}. Attributes: {', '.join(ATTRIBUTES)}.")
            found = [p for p in self.people if self.attrs[p].get(attr, "").lower() == value]
            text = (
                f"The person whose {attr} is {m.group(2).strip()}: {', '.join(found)}."
                if found
                else f"Nobody has {attr} {m.group(2).strip()!r}. Try search[{m.group(2).strip()}]."
            )
            return Lookup(text, kind="whose", relation=attr, value=value, found=found)
        m = re.match(r"^(date of birth|birth date)\s+of\s+(.+)$", q, re.IGNORECASE) or re.match(
            r"^(.+?)\s+of\s+(.+)$", q, re.IGNORECASE
        )
        if not m:
            return Lookup(
                "Write lookup[<relation> of <Name>], e.g. lookup[mother of Ann Lee], or "
                "lookup[person whose hobby is chess]."
            )
        rel = singular(re.sub(r"^(the|a|an)\s+", "", m.group(1), flags=re.IGNORECASE))
        rel = "date of birth" if rel in ("birth date", "birthday", "date") else rel
        target = m.group(2)
        if re.search(r"\bof\b", target.replace("date of birth", "")) or re.search(r"\bwhose\b", target):
            # A chain of relations: resolve its innermost one only (one hop per lookup), and say so.
            m_whose = re.search(r"(?:person|people)\s+whose\s+.+$", q, re.IGNORECASE)
            m_last = re.search(
                r"([a-z][a-z\- ]*?)\s+of\s+((?:(?!\bof\b).)+)$",
                q.replace("date of birth", "date_of_birth"),
                re.IGNORECASE,
            )
            inner = (
                m_whose.group(0)
                if m_whose
                else re.sub(r"^(?:.*\s)?the\s+", "", m_last.group(0).replace("date_of_birth", "date of birth"))
                if m_last
                else ""
            )
            if not inner.strip() or len(inner.strip()) >= len(q):  # no inner hop to resolve: never recurse on itself
                return Lookup(
                    f"Cannot read {query.strip()!r} as a chain of relations. Write lookup[<relation> of "
                    "<Name>], e.g. lookup[mother of Ann Lee], or lookup[person whose hobby is chess]."
                )
            result = self.query(inner)
            result.text = f"(One relation per lookup: this resolved {inner} only.)\n" + result.text
            return result
        if rel not in ATTRIBUTES and rel not in self.RELATIONS:
            return Lookup(
                f"Unknown relation {m.group(1)!r}. Relations: {', '.join(self.RELATIONS)}; "
                f"attributes: {', '.join(ATTRIBUTES)}."
            )
        names = [n.strip() for n in re.split(r",|;|\band\b", target) if n.strip()]
        lines, people, found = [], [], []
        for raw in names:
            p = self.person(raw)
            if p is None:
                lines.append(f"No person named {raw!r}. Use search[...] to find the exact name.")
                continue
            people.append(p)
            if rel in ATTRIBUTES:
                value = self.attrs[p].get(rel, "unknown")
                lines.append(f"The {rel} of {p} is {value}.")
                found += [value] if value not in found else []
                continue
            got = sorted(self.relation(p, rel))
            lines.append(f"The {rel} of {p}: {', '.join(got)} ({len(got)})." if got else f"{p} has no {rel} (0).")
            found += [g for g in got if g not in found]
        return Lookup(
            "\n".join(lines),
            kind="relation",
            relation=rel,
            people=people,
            found=found,
            all_known=len(people) == len(names),
        )


@dataclass
class Lookup:
    """One lookup's answer: the text the agent sees, and what it resolved (for the progress note)."""

    text: str
    kind: str = "error"  # relation | whose | error
    relation: str = ""  # the singular relation or attribute
    value: str = ""  # whose: the attribute value asked for
    people: list[str] = field(default_factory=list)  # relation: the people it was asked about
    found: list[str] = field(default_factory=list)  # the people (or attribute values) it returned, in order
    all_known: bool = True  # every name asked about is a person of the universe


FamilyGraph.RELATIONS = (
    "parent",
    "mother",
    "father",
    "child",
    "son",
    "daughter",
    "sibling",
    "sister",
    "brother",
    "spouse",
    "wife",
    "husband",
    "friend",
    "grandparent",
    "grandmother",
    "grandfather",
    "grandchild",
    "granddaughter",
    "grandson",
    "great-grandparent",
    "great-grandmother",
    "great-grandfather",
    "great-grandchild",
    "great-granddaughter",
    "great-grandson",
    "aunt",
    "uncle",
    "great-aunt",
    "great-uncle",
    "second aunt",
    "second uncle",
    "niece",
    "nephew",
    "cousin",
    "female cousin",
    "male cousin",
    "female second cousin",
    "male second cousin",
    "female first cousin once removed",
    "male first cousin once removed",
    "parent-in-law",
    "mother-in-law",
    "father-in-law",
    "son-in-law",
    "daughter-in-law",
    "sister-in-law",
    "brother-in-law",
)


NAME = r"[A-Z][a-z]+(?: [A-Z][a-z]+)+"


@dataclass
class Chain:
    """What is left of a question as the agent resolves it, innermost relation first (the progress note).

    "Who is the mother of the nephew of Carl Peace?" after lookup[nephew of Carl Peace] (-> A, B) reads
    "Who is the mother of A, B?". The note only records the agent's own lookups: a lookup advances it when it asks
    the question's innermost relation for exactly the people the note names (or, for "the person whose ...",
    when it asks for exactly the people with that attribute); any other lookup leaves it unchanged.
    """

    head: str  # "Who is" | "What is" | "How many grandparents does"
    relations: list[str]  # outermost first, as the question writes them
    anchor_text: str  # the innermost person as written: a name, or "the person whose hobby is chess"
    anchor: list[str] | None  # the people the resolved part leads to; None while "the person whose" is open
    whose: tuple[str, str] | None  # (attribute, value) of "the person whose ..."
    tail: str  # "?" or " have?"
    count: str | None = None  # "How many X": the singular X
    done: bool = False  # a "How many" question whose count lookup is done

    @classmethod
    def parse(cls, question: str) -> "Chain | None":
        q = " ".join(question.split())
        m = re.match(r"^How many (.+?) does (.+) have\?$", q)
        if m:
            head, body, tail, count = f"How many {m.group(1)} does", m.group(2), " have?", singular(m.group(1))
        else:
            m = re.match(r"^(Who|What) is (.+)\?$", q)
            if not m:
                return None
            head, body, tail, count = f"{m.group(1)} is", m.group(2), "?", None
        m = re.search(r"(?:^|\bof )the person whose (.+?) is (.+)$", body)
        if m:
            whose, anchor, anchor_text = (singular(m.group(1)), m.group(2).strip().lower()), None, m.group(0)
        else:
            m = re.search(rf"(?:^|\bof )({NAME})$", body)
            if not m:
                return None
            whose, anchor, anchor_text = None, [m.group(1)], m.group(1)
        rest = body[: m.start()].replace("date of birth", "date_of_birth")
        relations = [
            r.strip().replace("date_of_birth", "date of birth") for r in re.split(r"\bof\b", rest) if r.strip()
        ]
        relations = [re.sub(r"^the\s+", "", r) for r in relations]
        anchor_text = re.sub(r"^of ", "", anchor_text)
        return cls(head, relations, anchor_text, anchor, whose, tail, count)

    def advance(self, lookup: Lookup, graph: FamilyGraph) -> bool:
        """Move past the innermost relation if `lookup` resolved it; True when it did."""
        if lookup.kind == "whose" and self.anchor is None and self.whose == (lookup.relation, lookup.value):
            self.anchor = list(lookup.found)
            return True
        if lookup.kind != "relation" or not lookup.all_known or self.done:
            return False
        anchor = self.anchor
        if anchor is None:  # "the person whose ..." skipped by naming its people directly
            attr, value = self.whose
            anchor = [p for p in graph.people if graph.attrs[p].get(attr, "").lower() == value]
        if set(lookup.people) != set(anchor) or not anchor:
            return False
        if self.relations and lookup.relation == singular(self.relations[-1]):
            self.relations.pop()
            self.anchor = list(lookup.found)
            return True
        if not self.relations and self.count and lookup.relation == self.count:
            self.anchor, self.done = anchor, True
            return True
        return False

    def text(self) -> str:
        if self.done:
            return "nothing: answer with the number(s) in parentheses from the last lookup."
        if not self.relations and self.anchor is not None and not self.count:
            return (
                "nothing: answer with the "
                + ("value" if self.head.startswith("What") else "names")
                + " from the last lookup."
            )
        target = self.anchor_text if self.anchor is None else (", ".join(self.anchor) or "nobody")
        chain = "".join(f"the {r} of " for r in self.relations)
        return f"{self.head} {chain}{target}{self.tail}"
