"""lungnodule: pulmonary nodule detection on CT, from LUNA16-format scans to LUNA16-scored results.

Stages: a 2-D U-Net proposes candidates (`lungnodule.unet`), the MGI-CNN removes false positives
(`lungnodule.mgicnn`), CT-GAN injects or removes nodules (`lungnodule.ctgan`). Shared pieces: CT
volumes and geometry (`lungnodule.volume`, `lungnodule.dicom`), LUNA16 files (`lungnodule.luna`),
the synthetic dataset (`lungnodule.synth`) and the LUNA16 evaluator (`lungnodule.evaluation`).
"""

__version__ = "0.1.0"
