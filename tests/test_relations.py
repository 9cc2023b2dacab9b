"""The relation lookup (sale.tools.relations): PhantomWiki's relation rules, the tool's text, the progress note.

The strongest check: following each train question's chain of relations with the tool, innermost first,
gives PhantomWiki's gold answers for all 461 train questions. (Only the train universe: nothing is tuned on test.)
"""

import re

from sale.agents.searcher import Chain
from sale.tasks.phantomwiki import read_questions
from sale.tools.relations import FamilyGraph, singular

TRAIN = FamilyGraph.from_universe("train")


def follow(question: str) -> list[str]:
    """Resolve a question with lookups only, as a perfect agent would, guided by the progress note."""
    chain = Chain.parse(question)
    assert chain is not None and chain.text() == question
    if chain.whose:
        assert chain.advance(TRAIN.query(f"person whose {chain.whose[0]} is {chain.whose[1]}"), TRAIN)
    while chain.relations:
        result = TRAIN.query(f"{chain.relations[-1]} of {', '.join(chain.anchor)}")
        assert chain.advance(result, TRAIN), (question, result.text)
    if chain.count:
        result = TRAIN.query(f"{chain.count} of {', '.join(chain.anchor)}")
        assert chain.advance(result, TRAIN) and chain.text().startswith("nothing")
        return sorted(set(re.findall(r"\((\d+)\)", result.text)))
    assert chain.text().startswith("nothing")
    return sorted(chain.anchor)


def test_following_the_chain_with_lookups_gives_the_gold_answer_of_every_train_question():
    questions = read_questions("train")
    assert len(questions) == 461
    wrong = [q["question"] for q in questions if follow(q["question"]) != sorted(q["answers"])]
    assert not wrong, wrong[:3]


def test_lookup_reads_relations_facts_and_attributes_from_the_articles():
    assert TRAIN.lookup("mother of Elicia Barbee") == "The mother of Elicia Barbee: Krystle Barbee (1)."
    assert TRAIN.lookup("the Sisters of elicia barbee") == "The sister of Elicia Barbee: Nettie Barbee (1)."
    assert TRAIN.lookup("hobby of Elicia Barbee") == "The hobby of Elicia Barbee is geocaching."
    assert TRAIN.lookup("date of birth of Elicia Barbee") == "The date of birth of Elicia Barbee is 1040-03-27."
    many = TRAIN.lookup("grandparents of Cleveland Fite, Clint Hacker and Hyman Fite").splitlines()
    assert len(many) == 3 and all(line.endswith("Galen Peace, Laverna Peace (2).") for line in many)
    assert TRAIN.lookup("person whose date of birth is 0821-11-27").endswith(": Therese Kirschner.")
    assert TRAIN.lookup("date of birth is 0821-11-27").endswith(": Therese Kirschner.")  # "person whose" left out


def test_lookup_answers_mistakes_with_the_fix():
    nested = TRAIN.query("friend of the mother-in-law of Elizebeth Spann")  # a chain: its innermost hop only
    assert nested.text == (
        "(One relation per lookup: this resolved mother-in-law of Elizebeth Spann only.)\n"
        "The mother-in-law of Elizebeth Spann: Arline Spann (1)."
    )
    assert nested.relation == "mother-in-law" and nested.people == ["Elizebeth Spann"]
    assert TRAIN.query("grandparent of the person whose hobby is cribbage").kind == "whose"
    assert "Unknown relation 'aunty'" in TRAIN.lookup("aunty of Carl Peace")
    assert "No person named 'Nobody Here'" in TRAIN.lookup("mother of Nobody Here")
    assert TRAIN.lookup("Carl Peace").startswith("Write lookup[<relation> of <Name>]")
    assert TRAIN.lookup("hobby of Carl Peace") and "has no" in TRAIN.lookup("great-grandparent of Hayden Mcclain")


def test_plurals_fold_to_the_relation_word():
    assert singular("great-grandchildren") == "great-grandchild"
    assert singular("Sisters-in-law") == "sister-in-law"
    assert singular("wives") == "wife" and singular("cousins") == "cousin" and singular("aunt") == "aunt"


def test_the_progress_note_moves_only_on_the_innermost_relation_for_all_its_people():
    chain = Chain.parse("Who is the mother of the grandparent of the nephew of Carl Peace?")
    assert not chain.advance(TRAIN.query("grandparent of Carl Peace"), TRAIN)  # not the innermost relation
    assert chain.advance(TRAIN.query("nephew of Carl Peace"), TRAIN)
    assert chain.text() == "Who is the mother of the grandparent of Cleveland Fite, Clint Hacker, Hyman Fite?"
    assert not chain.advance(TRAIN.query("grandparent of Cleveland Fite"), TRAIN)  # one name of three
    assert chain.text() == "Who is the mother of the grandparent of Cleveland Fite, Clint Hacker, Hyman Fite?"
    assert chain.advance(TRAIN.query("grandparents of Hyman Fite, Cleveland Fite, Clint Hacker"), TRAIN)
    assert chain.advance(TRAIN.query("mother of Galen Peace, Laverna Peace"), TRAIN)
    assert chain.text() == "nothing: answer with the names from the last lookup."
    how_many = Chain.parse("How many sisters does the friend of Carl Peace have?")
    assert how_many.count == "sister" and how_many.advance(TRAIN.query("friend of Carl Peace"), TRAIN)
    assert how_many.text().startswith("How many sisters does ") and how_many.text().endswith(" have?")


def test_no_lookup_string_crashes_the_tool():
    """Model output is arbitrary: chains with dangling 'of's, a 'whose' without a person, empty names. Each gets a
    readable answer, never an exception (one recursed until RecursionError and stopped a scaling run)."""
    import random

    from sale.agents.searcher import run_tool

    chain = Chain.parse("Who is the mother of the friend of Elicia Barbee?")
    fixed = [
        "friend of Lisa, whose dad",
        "whose of whose",
        "of of of",
        "mother of whose",
        "nephew of the mother of",
        "mother of  of Ann",
        "date of birth of whose",
        "the mother of the father of",
        "",
        "   ",
        "of",
        "whose",
    ]
    words = [
        "of",
        "the",
        "whose",
        "person",
        "is",
        "mother",
        "friend",
        "great-grandparent",
        "date of birth",
        ",",
        "and",
        "Elicia Barbee",
        "Krystle Barbee",
        "?",
        "(",
        "'",
        "hobby",
        "people",
        "=",
        "sister-in-law",
    ]
    rng = random.Random(0)
    fuzzed = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 9))) for _ in range(400)]
    for query in fixed + fuzzed:
        assert isinstance(TRAIN.query(query).text, str), query
        assert isinstance(run_tool("lookup", query, "train", 3, chain), str), query
    assert TRAIN.lookup("friend of Lisa, whose dad").startswith("Cannot read 'friend of Lisa, whose dad'")
