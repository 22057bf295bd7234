"""Which earlier turns a question continues, what its pronouns stand for, and the cache of what was
seen in an image: pure functions over real turns and real pictures."""

from conftest import skimage_photo

from vlmsearch.pipeline.conversation import Conversation, SeenImages, image_digest, refers_back, turn_subject
from vlmsearch.pipeline.types import Citation, Turn

CAT, COFFEE = skimage_photo("chelsea"), skimage_photo("coffee")
CATS = Citation(1, "docs/cats.md", "Domestic cats: Domestic cats usually live 12 to 18 years.", "p1")
ESPRESSO = Citation(1, "docs/espresso.md", "Espresso is coffee brewed under pressure.", "p2")
ABOUT_CAT = Turn("what kind of animal is this?", "It is a domestic cat [1].", (CATS,), CAT)


def test_a_pronoun_follow_up_is_about_what_the_last_answer_cited():
    conversation = Conversation.resolve("how long do they usually live?", None, [ABOUT_CAT], max_turns=3)
    assert conversation.subject == "Domestic cats" and conversation.image is CAT and conversation.turns == (ABOUT_CAT,)
    assert conversation.standalone("how long do they usually live?") == "how long do Domestic cats usually live?"
    assert conversation.standalone("what does its body look like?") == "what does Domestic cats' body look like?"
    assert conversation.earlier_questions() == "what kind of animal is this?"
    assert "[1]" not in conversation.history_text() and "It is a domestic cat." in conversation.history_text()


def test_a_passage_without_a_heading_names_its_subject_by_file():
    assert turn_subject(Turn("what is espresso?", "Coffee brewed under pressure [1].", (ESPRESSO,))) == "espresso"
    assert turn_subject(Turn("hi", "Hello!")) == ""


def test_an_unrelated_question_starts_a_new_subject_and_leaves_the_picture_out():
    espresso = Turn("what is espresso made of?", "Finely ground coffee beans [1].", (ESPRESSO,))
    unrelated = Conversation.resolve("what is espresso made of?", None, [ABOUT_CAT], max_turns=3)
    assert unrelated.turns == () and unrelated.subject == "" and unrelated.image is None
    after = Conversation.resolve("how is it made?", None, [ABOUT_CAT, espresso], max_turns=3)
    assert after.subject == "espresso" and after.image is None and after.turns == (espresso,)
    # Pointing at the picture brings it back, about the picture, not about what was said.
    back = Conversation.resolve("what colour is this animal?", None, [ABOUT_CAT, espresso], max_turns=3)
    assert back.image is CAT and back.subject == ""


def test_a_new_image_starts_over_and_the_same_one_sent_again_goes_on():
    assert Conversation.resolve("how long do they live?", COFFEE, [ABOUT_CAT], max_turns=3).turns == ()
    again = CAT.copy()  # the same pixels, another object: a client that re-sends the picture
    same = Conversation.resolve("how long do they live?", again, [ABOUT_CAT], max_turns=3)
    assert same.turns == (ABOUT_CAT,) and same.subject == "Domestic cats" and same.image is again


def test_only_the_last_turns_reach_the_prompts():
    turns = [Turn(f"and question {i}?", f"answer {i}") for i in range(6)]
    assert [t.question for t in Conversation.resolve("and then?", None, turns, max_turns=2).turns] == ["and question 4?", "and question 5?"]
    assert Conversation.resolve("and then?", None, turns, max_turns=0).turns == ()


def test_follow_ups_are_recognised():
    for question in ("how long do they live?", "what is its weight?", "and the price?", "what about the engine?"):
        assert refers_back(question), question
    for question in ("what is espresso made of?", "how do rockets work?"):
        assert not refers_back(question), question


def test_seen_images_are_cached_by_pixels_within_a_bound():
    seen, runs = SeenImages(size=2), []

    def run(name):
        runs.append(name)
        return name

    key = ("visual_search", image_digest(CAT))
    assert seen.get(key, lambda: run("cat")) == ("cat", False)
    assert seen.get(("visual_search", image_digest(CAT.copy())), lambda: run("again")) == ("cat", True)
    seen.get(("visual_search", image_digest(COFFEE)), lambda: run("coffee"))
    seen.get(("caption", image_digest(COFFEE)), lambda: run("caption"))
    assert seen.get(key, lambda: run("cat 2")) == ("cat 2", False)  # the oldest went first
    assert runs == ["cat", "coffee", "caption", "cat 2"]
