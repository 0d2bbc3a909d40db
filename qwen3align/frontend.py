"""Text frontend: tokenizer, word splitting, prompt ids, timestamp repair, ASR output parsing.

The mechanisms are in C (csrc/frontend/); this module adds the policy: language names, the
"no words" rule and the parsing of the ASR model's text output.

    tok = Tokenizer("Qwen3-ForcedAligner-0.6B")
    words = split_words("Hello world, it's 2026.", language="en")   # ['Hello', 'world', "it's", '2026']
    ids = aligner_prompt_ids(tok, words, audio_token_count(mel_frames))
    fixed_ms = repair_timestamps([c * 80.0 for c in raw_classes])
    language, text = parse_asr_output("language English<asr_text>hello")   # ('English', 'hello')
"""
from . import _qwen3align as _C
from .errors import InputError

__all__ = [
    "Tokenizer", "split_words", "audio_token_count", "aligner_prompt_ids", "asr_prompt_ids",
    "repair_timestamps", "parse_asr_output", "normalize_language", "LANGUAGES", "ALIGNER_LANGUAGES",
]

Tokenizer = _C.Tokenizer
audio_token_count = _C.audio_token_count
aligner_prompt_ids = _C.aligner_prompt_ids
repair_timestamps = _C.repair_timestamps

# The 30 languages Qwen3-ASR can be forced to (config `support_languages`, qwen_asr utils
# SUPPORTED_LANGUAGES), name -> ISO code as transformers 5.17 LANGUAGE_CODE_TO_NAME accepts it.
LANGUAGES = {
    "Chinese": "zh", "English": "en", "Cantonese": "yue", "Arabic": "ar", "German": "de",
    "French": "fr", "Spanish": "es", "Portuguese": "pt", "Indonesian": "id", "Italian": "it",
    "Korean": "ko", "Russian": "ru", "Thai": "th", "Vietnamese": "vi", "Japanese": "ja",
    "Turkish": "tr", "Hindi": "hi", "Malay": "ms", "Dutch": "nl", "Swedish": "sv",
    "Danish": "da", "Finnish": "fi", "Polish": "pl", "Czech": "cs", "Filipino": "fil",
    "Persian": "fa", "Greek": "el", "Romanian": "ro", "Hungarian": "hu", "Macedonian": "mk",
}
# The 11 languages of Qwen3-ForcedAligner (config `support_languages`; HF FORCED_ALIGNER_LANGUAGES).
ALIGNER_LANGUAGES = frozenset({
    "Chinese", "Cantonese", "English", "German", "Spanish", "French", "Italian", "Portuguese",
    "Russian", "Korean", "Japanese",
})

_BY_KEY = {**{n.lower(): n for n in LANGUAGES}, **{c: n for n, c in LANGUAGES.items()}}
_WORD_MODES = {"Japanese": 1, "Korean": 2}  # csrc/frontend/words.h qa_words_mode; others 0


def normalize_language(language, *, aligner=False):
    """Canonical language name ("English") for a name or ISO code, any case; None stays None.

    With aligner=True only the 11 aligner languages are accepted. Raises InputError listing the
    supported names and codes otherwise.
    """
    if language is None:
        return None
    if not isinstance(language, str):
        raise InputError(f"language must be a str or None, not {type(language).__name__}")
    name = _BY_KEY.get(language.strip().lower())
    allowed = ALIGNER_LANGUAGES if aligner else LANGUAGES.keys()
    if name is None or name not in allowed:
        names = sorted(allowed)
        codes = sorted(LANGUAGES[n] for n in names)
        what = "the forced aligner" if aligner else "Qwen3-ASR"
        raise InputError(
            f"unsupported language {language!r} for {what}; supported: {', '.join(names)} "
            f"(or codes {', '.join(codes)})"
        )
    return name


def split_words(text, language=None):
    """Split a transcript into the words (or CJK characters) the aligner gives times to.

    Default (language None and every aligner language but Japanese/Korean, Chinese included):
    identical to transformers 5.17 ``split_words_for_alignment`` — split at whitespace, keep
    letters, digits and apostrophes (punctuation is dropped without splitting: "3rd-floor" ->
    "3rdfloor"), every CJK ideograph becomes its own word.

    Korean: whitespace words, cleaned the same way, ideographs not split — what transformers 5.17
    gets from soynlp's ``LTokenizer()`` (without word scores it keeps each word whole).

    Japanese: the reference uses the nagisa morphological analyser, which has no C equivalent.
    Fallback: the default rules, and a kept run is also cut where the script changes between
    hiragana, katakana and other letters/digits ("日本語のテキストです" -> 日, 本, 語, の,
    テキスト, です). Pass your own ``words=[...]`` to the aligner for a true morpheme split.

    ``language`` is a name or ISO code (case-insensitive) of the 11 aligner languages; another
    raises InputError listing them. A text without letters or digits raises InputError
    ("no words to align").
    """
    name = normalize_language(language, aligner=True)
    words = _C._split_words(text, _WORD_MODES.get(name, 0))
    if not words:
        raise InputError("no words to align: the text has no letters or digits")
    return words


def asr_prompt_ids(tokenizer, n_audio_tokens, language=None, context=""):
    """Ids of the Qwen3-ASR chat prompt: system block with ``context`` (hotwords / biasing text,
    may be empty), the user turn with ``n_audio_tokens`` audio pads, the assistant prefix, and —
    when ``language`` (one of the 30 ASR names or codes) is given — the forced
    ``language {Name}<asr_text>``."""
    return _C._asr_prompt_ids(tokenizer, n_audio_tokens, normalize_language(language), context)


# ---- ASR output ---------------------------------------------------------------------------------
# Reference: qwen_asr/inference/utils.py parse_asr_output + detect_and_fix_repetitions (threshold 20),
# MODEL_FACTS §8.2. Unknown / no language is None here (the reference uses "").

_REPEAT_THRESHOLD = 20
_MAX_PATTERN = 20


def _collapse_char_runs(s, thresh=_REPEAT_THRESHOLD):
    """A character repeated more than thresh times in a row becomes one copy."""
    out, i, n = [], 0, len(s)
    while i < n:
        j = i + 1
        while j < n and s[j] == s[i]:
            j += 1
        out.append(s[i] if j - i > thresh else s[i:j])
        i = j
    return "".join(out)


def _find_pattern_run(s, i, thresh, max_len):
    """(k, end) when a pattern of k chars starting at i repeats >= thresh times, up to end; else None."""
    n = len(s)
    for k in range(1, max_len + 1):
        if i + k * thresh > n:
            return None
        pattern = s[i:i + k]
        if all(s[i + r * k:i + r * k + k] == pattern for r in range(1, thresh)):
            end = i + thresh * k
            while end + k <= n and s[end:end + k] == pattern:
                end += k
            return k, end
    return None


def _collapse_pattern_runs(s, thresh=_REPEAT_THRESHOLD, max_len=_MAX_PATTERN):
    """A pattern of 1..max_len chars repeated >= thresh times keeps one copy. Same scan as the
    reference's recursive fix_pattern_repeats (only starts i <= len - 2*thresh are tried), as a loop."""
    out = []
    while True:
        n = len(s)
        if n < 2 * thresh:
            out.append(s)
            return "".join(out)
        for i in range(n - 2 * thresh + 1):
            hit = _find_pattern_run(s, i, thresh, max_len)
            if hit:
                k, end = hit
                out.append(s[:i + k])
                s = s[end:]
                break
        else:
            out.append(s)
            return "".join(out)


def fix_repetitions(text):
    """The reference's degenerate-loop cleanup of decoded ASR text (threshold 20)."""
    return _collapse_pattern_runs(_collapse_char_runs(text))


def parse_asr_output(raw, forced_language=None):
    """Split the decoded ASR output into ``(language, text)``.

    ``"language English<asr_text>hello"`` -> ``("English", "hello")``; ``"language None<asr_text>"``
    (no speech) -> ``(None, "")``; no ``<asr_text>`` tag -> ``(None, whole text)``. With
    ``forced_language`` the model wrote only the transcript: ``(canonical name, text)``.
    Repetition loops are collapsed first (a character repeated > 20 times, a pattern of up to
    20 characters repeated >= 20 times).
    """
    forced = normalize_language(forced_language)
    s = "" if raw is None else str(raw).strip()
    if not s:
        return forced, ""
    s = fix_repetitions(s)
    if forced:
        return forced, s
    if "<asr_text>" not in s:
        return None, s.strip()
    meta, text = s.split("<asr_text>", 1)
    if "language none" in meta.lower():
        return None, text.strip()
    language = None
    for line in meta.splitlines():
        line = line.strip()
        if line.lower().startswith("language "):
            value = line[len("language "):].strip()
            if value:
                language = value[:1].upper() + value[1:].lower()
            break
    return language, text.strip()
