"""Language identification with py3langid: its model ships inside the PyPI package, so
nothing is downloaded at run time. Probabilities are normalized over its 97 languages."""

from __future__ import annotations

from tasks.curation.web.config import LanguageConfig


class LanguageId:
    def __init__(self, cfg: LanguageConfig):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.cfg = cfg
        self.keep = set(cfg.keep)
        self.model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def identify(self, text: str) -> tuple[str, float]:
        lang, prob = self.model.classify(text)
        return lang, float(prob)

    def verdict(self, text: str) -> tuple[str, float, str | None]:
        """(language, probability, why it is removed or None)."""
        lang, prob = self.identify(text)
        if lang not in self.keep:
            return lang, prob, f"identified as {lang} ({prob:.2f}); keeping {', '.join(sorted(self.keep))}"
        if prob < self.cfg.threshold:
            return lang, prob, f"{lang} at {prob:.2f}, under the threshold {self.cfg.threshold}"
        return lang, prob, None
