"""Datasets: procedural layered scenes, the SAS folder layout, and the LightningDataModule."""
