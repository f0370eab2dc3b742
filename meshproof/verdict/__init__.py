"""Verdicts: sample-size designs from both error rates (``stats``) and the record of
one check's judgements (``judgement``). Importable without pytest or a target."""
