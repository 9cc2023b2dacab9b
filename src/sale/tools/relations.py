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
from collections.abc import Callable
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

    def second_cousins(self, x: str) -> set[str]:
        return self._step(self.parents[x], lambda a: self._step(self.cousins(a), lambda b: self.children[b])) - {x}

    def relation(self, x: str, rel: str) -> set[str] | None:
        """The people who are the `rel` of x (a singular relation word), or None for a word the tool lacks."""
        fn = RELATION_TABLE.get(rel)
        return None if fn is None else fn(self, x)

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
        if rel not in ATTRIBUTES and rel not in RELATION_TABLE:
            return Lookup(
                f"Unknown relation {m.group(1)!r}. Relations: {', '.join(RELATION_TABLE)}; "
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
            got = sorted(self.relation(p, rel) or ())
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


# The relation words the lookup tool knows, in the order its error message lists them, each composed from the
# articles' facts with PhantomWiki's rules.
RELATION_TABLE: dict[str, Callable[[FamilyGraph, str], set[str]]] = {
    "parent": lambda g, x: set(g.parents[x]),
    "mother": lambda g, x: g._female(g.parents[x]),
    "father": lambda g, x: g._male(g.parents[x]),
    "child": lambda g, x: set(g.children[x]),
    "son": lambda g, x: g._male(g.children[x]),
    "daughter": lambda g, x: g._female(g.children[x]),
    "sibling": lambda g, x: g.siblings(x),
    "sister": lambda g, x: g._female(g.siblings(x)),
    "brother": lambda g, x: g._male(g.siblings(x)),
    "spouse": lambda g, x: set(g.spouses[x]),
    "wife": lambda g, x: g._female(g.spouses[x]),
    "husband": lambda g, x: g._male(g.spouses[x]),
    "friend": lambda g, x: set(g.friends[x]),
    "grandparent": lambda g, x: g.grandparents(x),
    "grandmother": lambda g, x: g._female(g.grandparents(x)),
    "grandfather": lambda g, x: g._male(g.grandparents(x)),
    "grandchild": lambda g, x: g.grandchildren(x),
    "granddaughter": lambda g, x: g._female(g.grandchildren(x)),
    "grandson": lambda g, x: g._male(g.grandchildren(x)),
    "great-grandparent": lambda g, x: g.great_grandparents(x),
    "great-grandmother": lambda g, x: g._female(g.great_grandparents(x)),
    "great-grandfather": lambda g, x: g._male(g.great_grandparents(x)),
    "great-grandchild": lambda g, x: g.great_grandchildren(x),
    "great-granddaughter": lambda g, x: g._female(g.great_grandchildren(x)),
    "great-grandson": lambda g, x: g._male(g.great_grandchildren(x)),
    "aunt": lambda g, x: g._step(g.parents[x], lambda a: g._female(g.siblings(a))),
    "uncle": lambda g, x: g._step(g.parents[x], lambda a: g._male(g.siblings(a))),
    "great-aunt": lambda g, x: g._step(g.grandparents(x), lambda a: g._female(g.siblings(a))),
    "great-uncle": lambda g, x: g._step(g.grandparents(x), lambda a: g._male(g.siblings(a))),
    "second aunt": lambda g, x: g._step(g.great_grandparents(x), lambda a: g._female(g.siblings(a))),
    "second uncle": lambda g, x: g._step(g.great_grandparents(x), lambda a: g._male(g.siblings(a))),
    "niece": lambda g, x: g._step(g.siblings(x), lambda a: g._female(g.children[a])),
    "nephew": lambda g, x: g._step(g.siblings(x), lambda a: g._male(g.children[a])),
    "cousin": lambda g, x: g.cousins(x),
    "female cousin": lambda g, x: g._female(g.cousins(x)),
    "male cousin": lambda g, x: g._male(g.cousins(x)),
    "female second cousin": lambda g, x: g._female(g.second_cousins(x)),
    "male second cousin": lambda g, x: g._male(g.second_cousins(x)),
    "female first cousin once removed": lambda g, x: g._step(g.cousins(x), lambda a: g._female(g.children[a])) - {x},
    "male first cousin once removed": lambda g, x: g._step(g.cousins(x), lambda a: g._male(g.children[a])) - {x},
    "parent-in-law": lambda g, x: g._step(g.spouses[x], lambda a: g.parents[a]),
    "mother-in-law": lambda g, x: g._step(g.spouses[x], lambda a: g._female(g.parents[a])),
    "father-in-law": lambda g, x: g._step(g.spouses[x], lambda a: g._male(g.parents[a])),
    "son-in-law": lambda g, x: g._step(g.children[x], lambda a: g._male(g.spouses[a])),
    "daughter-in-law": lambda g, x: g._step(g.children[x], lambda a: g._female(g.spouses[a])),
    "sister-in-law": lambda g, x: g._step(g.spouses[x], lambda a: g._female(g.siblings(a))),
    "brother-in-law": lambda g, x: g._step(g.spouses[x], lambda a: g._male(g.siblings(a))),
}
