"""Networks (the SAS-exact UNet) and the LightningModule that trains them."""
