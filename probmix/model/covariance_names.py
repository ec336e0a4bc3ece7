"""mclust's names of the covariance models, importable without torch (the command line's
``--covariance`` choices are built from them before anything is fitted)."""

__all__ = ["ALIASES", "MCLUST_MODELS"]

#: mclust's names of the four built-in families
ALIASES = {"VII": "spherical", "VVI": "diag", "EEE": "tied", "VVV": "full"}
#: mclust's 14 models, in its order
MCLUST_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV",
                 "VEV", "EVV", "VVV")
