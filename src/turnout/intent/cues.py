"""Words that show intent, in the languages the privacy scanner covers: English, German, French,
Spanish, Italian, Dutch and Portuguese. Matched on lowercased text with typographic apostrophes
straightened; phrases are whole-word.
"""

from __future__ import annotations

import re
import unicodedata

# The user says the answer was not what they asked for.
CORRECTION = (
    # en
    r"no,? i meant",
    r"i meant",
    r"i mean(?! it)",
    r"that'?s not what i (asked|meant|wanted|said)",
    r"that is not what i (asked|meant|wanted|said)",
    r"not what i (asked|meant|wanted)",
    r"you misunderst(oo|an)d",
    r"you got it wrong",
    r"you got that wrong",
    r"that'?s (wrong|incorrect|not right|not correct|not it)",
    r"that is (wrong|incorrect|not right|not correct)",
    r"wrong answer",
    r"i did(n'?t| not) ask",
    r"i was asking (about|for)",
    r"i asked (about|for)",
    r"(that|this) (does(n'?t| not)|did(n'?t| not)) answer",
    r"you did(n'?t| not) answer",
    r"^nope\b",
    r"^(no|wrong)[.!,]? (not|it'?s|the|i|that|you)\b",
    r"^wrong\b",
    r"not quite[,.] i",
    # de
    r"nein,? ich meinte",
    r"ich meinte",
    r"ich meine\b(?! es)",  # not "ich meinen Router"
    r"das (meinte|wollte) ich nicht",
    r"das habe ich nicht gefragt",
    r"nicht das,? was ich",
    r"das ist (falsch|nicht richtig|nicht korrekt)",
    r"das stimmt nicht",
    r"(du hast|sie haben) mich (falsch|miss)verstanden",
    r"falsch verstanden",
    r"ich wollte (wissen|fragen)",
    r"ich habe nach .{1,60} gefragt",
    r"^nein[.!,]? (nicht|das|ich|du|es)\b",
    r"^falsch\b",
    # fr
    r"non,? je voulais dire",
    r"je voulais dire",
    r"ce n'?est pas ce que (j'?ai demandé|je voulais|je demandais)",
    r"pas ce que j'?ai demandé",
    r"c'?est (faux|incorrect|inexact)",
    r"(tu as|vous avez) mal compris",
    r"je demandais",
    r"ce n'?est pas (ça|cela)",
    r"^non[.!,]? (pas|ce|je|c'?est|tu|vous)\b",
    r"je parlais de",
    # es
    r"no,? me refería",
    r"me refería a",
    r"(eso )?no es lo que (pregunté|quería|pedí)",
    r"eso (está mal|es incorrecto)",
    r"es incorrecto",
    r"está mal",
    r"me entendiste mal",
    r"no me entendiste",
    r"me ha entendido mal",
    r"quise decir",
    r"lo que pregunté",
    r"^no[.!,]? (no|eso|me|quiero|te)\b",
    r"yo preguntaba",
    # it
    r"no,? intendevo",
    r"intendevo",
    r"non è quello che (ho chiesto|intendevo|volevo)",
    r"è sbagliat[oa]",
    r"hai capito male",
    r"non hai capito",
    r"volevo dire",
    r"non è corretto",
    r"^no[.!,]? (non|intendo|volevo|è)\b",
    # nl
    r"nee,? ik bedoelde",
    r"ik bedoelde",
    r"ik bedoel(?! het)",
    r"dat is niet wat ik (vroeg|bedoelde|wilde)",
    r"dat bedoelde ik niet",
    r"dat klopt niet",
    r"dat is (fout|onjuist|niet juist)",
    r"je begrijpt me verkeerd",
    r"verkeerd begrepen",
    r"niet wat ik bedoel",
    r"^nee[.!,]? (niet|dat|ik|je)\b",
    # pt
    r"não,? eu quis dizer",
    r"eu quis dizer",
    r"não (foi|é) (isso|o) que eu (perguntei|pedi|queria)",
    r"não (foi|é) (isso|o) que (perguntei|pedi|queria)",
    r"isso (está|tá) errado",
    r"está errado",
    r"(você|voce) (entendeu|me entendeu) (errado|mal)",
    r"entendeu mal",
    r"^não[.!,]? (não|isso|eu|é)\b",
    r"eu estava perguntando",
)

# The user announces that they are saying it again.
REPHRASE = (
    r"in other words",
    r"let me rephrase",
    r"to rephrase",
    r"rephrasing",
    r"put (it|this) another way",
    r"what i'?m asking is",
    r"what i am asking is",
    r"my question (is|was)",
    r"i'?ll ask again",
    r"let me try again",
    r"let me ask (again|differently)",
    r"to be clear",
    r"to clarify",
    r"let me clarify",
    r"once again",
    r"^again[:,]",
    r"anders gesagt",
    r"mit anderen worten",
    r"ich formuliere (es )?um",
    r"meine frage (ist|war)",
    r"noch ?(ein)?mal",
    r"nochmal",
    r"um es klarer",
    r"autrement dit",
    r"en d'?autres termes",
    r"je reformule",
    r"ma question (est|était)",
    r"je répète",
    r"encore une fois",
    r"en otras palabras",
    r"dicho de otro modo",
    r"reformulo",
    r"mi pregunta (es|era)",
    r"otra vez",
    r"de nuevo",
    r"in altre parole",
    r"riformulo",
    r"la mia domanda (è|era)",
    r"di nuovo",
    r"ancora una volta",
    r"met andere woorden",
    r"anders gezegd",
    r"ik herformuleer",
    r"mijn vraag (is|was)",
    r"nogmaals",
    r"opnieuw",
    r"em outras palavras",
    r"reformulando",
    r"minha pergunta (é|era)",
    r"de novo",
    r"mais uma vez",
    r"outra vez",
)

# The user builds on the answer: asks something more, after it, or about another case.
FOLLOW_UP = (
    r"also",
    r"too",
    r"as well",
    r"afterwards?",
    r"after that",
    r"then",
    r"^and",
    r"what about",
    r"how about",
    r"auch",
    r"danach",
    r"dann",
    r"^und",
    r"was ist mit",
    r"aussi",
    r"ensuite",
    r"après",
    r"^et",
    r"et pour",
    r"también",
    r"después",
    r"luego",
    r"^y",
    r"y qué",
    r"anche",
    r"dopo",
    r"poi",
    r"^e",  # it, pt: "and" ("en" is not here: fr and es "in" opens restatements too)
    r"ook",
    r"daarna",
    r"dan",
    r"também",
    r"depois",
    r"e quanto",
)

# The assistant asks what the user meant.
CLARIFYING = (
    r"do you mean",
    r"did you mean",
    r"are you (asking|referring|looking)",
    r"could you (clarify|specify|tell me more|provide more|be more specific)",
    r"can you (clarify|specify|tell me more|provide more|be more specific)",
    r"what (do you mean|kind|type|sort)",
    r"which (one|version|language|of)",
    r"more (details|context)",
    r"what exactly",
    r"meinen sie",
    r"meinst du",
    r"(können|könnten) sie .{0,40}(genauer|präzisieren)",
    r"was genau",
    r"welche[nrsm]?\b",
    r"was für",
    r"voulez-vous dire",
    r"veux-tu dire",
    r"(pourriez|pouvez)-vous préciser",
    r"qu'?entendez-vous",
    r"quel(le)?s? ",
    r"de quel",
    r"te refieres",
    r"se refiere",
    r"quieres decir",
    r"(podrías|podría) (aclarar|especificar|precisar)",
    r"cuál",
    r"qué tipo",
    r"intendi",
    r"potresti (chiarire|specificare|precisare)",
    r"quale",
    r"che tipo",
    r"bedoel je",
    r"bedoelt u",
    r"(kun|kunt) (je|u) .{0,30}(verduidelijken|specificeren|preciseren)",
    r"welke",
    r"wat voor",
    r"(você|voce) quer dizer",
    r"quer dizer",
    r"(poderia|pode) (esclarecer|especificar)",
    r"qual",
    r"que tipo",
)

# A question at the end of an answer that offers more rather than asks what was meant.
OFFER = (
    r"would you like",
    r"do you want me",
    r"want me to",
    r"shall i",
    r"should i",
    r"anything else",
    r"let me know",
    r"can i help",
    r"möchten sie",
    r"möchtest du",
    r"soll ich",
    r"noch etwas",
    r"sonst noch",
    r"voulez-vous que",
    r"veux-tu que",
    r"autre chose",
    r"souhaitez-vous",
    r"quieres que",
    r"algo más",
    r"te gustaría",
    r"le gustaría",
    r"vuoi che",
    r"desideri",
    r"qualcos'?altro",
    r"wil je dat",
    r"wilt u",
    r"nog iets",
    r"quer que eu",
    r"algo mais",
    r"gostaria",
)

# Replies that start with "no" and dismiss rather than correct.
_DISMISSING = (
    "thanks|thank you|problem|worries|need|danke|merci|gracias|grazie|bedankt|obrigad[oa]|"
    "that'?s (all|fine|ok)|it'?s fine|all good|c'?est tout|es todo|è tutto|dat is alles|"
    "é tudo|das ist alles|problema|problème|problem|probleem|pasa nada"
)
DISMISSAL = (rf"^(no|nein|non|nee|não)[.!,]? ({_DISMISSING})\b",)


def _compile(patterns: tuple[str, ...], whole: bool = False) -> re.Pattern[str]:
    # One look-behind for the whole alternation: the same matches as one per phrase, and some
    # ten times faster on a turn where nothing matches (the common case).
    end = "(?!\\w)" if whole else ""
    return re.compile(f"(?<!\\w)(?:{'|'.join(patterns)}){end}")


CORRECTION_RE = _compile(CORRECTION)
REPHRASE_RE = _compile(REPHRASE)
FOLLOW_UP_RE = _compile(FOLLOW_UP, whole=True)
CLARIFYING_RE = _compile(CLARIFYING)
OFFER_RE = _compile(OFFER)
DISMISSAL_RE = _compile(DISMISSAL)

_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "？": "?", "¿": " "})


def normal(text: str) -> str:
    """Lowercased, NFC, apostrophes straightened, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).translate(_QUOTES).lower().split())
