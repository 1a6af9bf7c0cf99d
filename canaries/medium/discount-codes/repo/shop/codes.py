"""Discount codes the shop accepts."""
