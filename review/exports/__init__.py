"""Exports of approved data: SFT, DPO, ShareGPT and the verdicts table."""
