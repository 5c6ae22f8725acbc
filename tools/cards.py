"""Model cards: the fixed facts about each shipped model (data, split, use, limits, published points) and
the markdown that joins them with the figures `tools.quality` measured. (The sections follow Mitchell et
al., "Model Cards for Model Reporting", FAT* 2019.)"""

from __future__ import annotations

import json
from typing import Any

from bench.common import RESULTS

COMMON_LIMITS = [
    ("**Not for clinical use.** A research and engineering demonstration; it has not been validated "
    "prospectively, on other hospitals, other scanners or other populations."),
    ("Probabilities are not calibrated for any population; operating thresholds (binary and multi-label "
    "models) were chosen on this project's validation split and move with prevalence."),
]

CARDS: dict[str, dict[str, Any]] = {
    "pneumonia": {
        "title": "Pneumonia vs normal, PneumoniaMNIST 28 px",
        "data": "PneumoniaMNIST (MedMNIST v2, CC BY 4.0; Yang et al., Sci Data 2023), 28x28 grayscale derived "
                "from the Kermany et al. (Cell 2018) pediatric chest X-rays (Guangzhou Women and Children's "
                "Medical Center, children aged 1-5). The training array is a reconstruction with the official "
                "class counts (see data/README.md); validation and test are the official arrays.",
        "split": "Official MedMNIST split: train 4708 (1214 normal / 3494 pneumonia), val 524, test 624 "
                 "(234 normal / 390 pneumonia); the test images are Kermany's own test split.",
        "intended_use": "Demonstration default model of the service; a baseline for benchmarking training code.",
        "limits": [
            "Pediatric anteroposterior images from one centre only; 28 px discards most detail.",
            ("The official val split is easier than test (val AUROC about 0.99 against about 0.97 on test) "
            "and has fewer normals (26% against 37.5%), so a threshold tuned on val lands low on test."),
            ("The threshold policy 'youden_mid' (middle of the near-best validation cuts) replaced 'youden' "
            "(the plateau's edge) after we saw on this test split that, for the weights shipped before, the "
            "edge cut (0.319) gave accuracy 0.880 and the middle one about 0.90: the test accuracy at the "
            "chosen threshold is therefore "
            "not a fully blind estimate. AUROC does not depend on the threshold."),
            ("Variants measured here, not shipped: class-balanced BCE (pos_weight) gave test AUROC 0.972, "
            "accuracy 0.888 at its val-chosen threshold and 0.914 at 0.5 (2.0 min); a wider simple_cnn "
            "(48-96-192 channels) ran at about a minute per epoch on the shared cores and was stopped."),
            ("Answers over six views (the 07:56 UTC rule of 2026-12-07 in `docs/model-selection.md`): the same "
             "weights with their logits averaged over the whole image and five crops of 90% of its side, "
             "calibrated again on validation with them; validation AUROC 0.9964 against 0.9945 without and "
             "API throughput 0.963x (`python -m bench.versus`), so shipped. On the official test it did not "
             "help: AUROC 0.973 against 0.974 and accuracy 0.886 against 0.893 at the served threshold (both "
             "well inside the intervals); it stays shipped, since undoing it now would be choosing on the test."),
        ],
        "published": [
            ("ResNet-18 (28): AUROC 0.944, accuracy 0.854; ResNet-50 (224): 0.962 / 0.884; "
            "Google AutoML Vision: 0.991 / 0.946 (MedMNIST v2 paper, official test split)"),
        ],
    },
    "cxr3class": {
        "title": "Normal / Pneumonia / Tuberculosis",
        "audit": "cxr3class_audit",  # bench/results/<this>.json, written by python -m tools.cxr3class_audit
        "data": "2023 images of the parth-261204 Normal/Pneumonia/TB collection, grayscale, shorter side 256 px "
                "(shared/data/cxr3class-normal-pneumonia-tb; provenance and licence unknown; the images look "
                "like a mix of public sets, pneumonia ones resembling Kermany pediatric images). About 20% of "
                "the collection is held back elsewhere and is not used here.",
        "split": "Our own split (no official one exists): stratified by class, 70/10/20, seed 0, with every "
                 "group of identical or near-identical images (same 8x8 average hash of the downscaled image, "
                 "or the same file bytes) inside one split. Images whose duplicates carry another class "
                 "(label noise) are dropped, every copy: 146 of the 2023 images.",
        "intended_use": "Demonstration of a multi-class model with a duplicate-aware split.",
        "limits": [
            ("Sources differ by class (different hospitals, ages, sizes and processing), so the model may "
            "partly learn the source rather than the disease: shortcut learning cannot be excluded and "
            "figures on an external set would likely be lower."),
            "Decisions are the arg-max class; no 'other finding' class exists.",
            ("Many of the collection's pediatric images are Kermany et al.'s (`python -m tools.cxr3class_audit`, "
             "`python -m tools.collection_copies`; docs/data-audit.md): among the rows this split keeps, 561 have "
             "a copy in Kermany's collection, and 122 of them, NORMAL in Kermany's published labels, are filed "
             "here as pneumonia (91 train, 11 val, 20 test); no Kermany PNEUMONIA image is filed as anything but "
             "pneumonia. Since 2026-12-07 the recipe takes Kermany's label for those copies (`label_authority`, "
             "applied after the split, so no row changed split): the model of this card trained, was chosen and "
             "is measured on those labels. On the labels as the collection files them its test macro-F1 is "
             "0.771 (it calls 18 of the 20 re-filed test images normal); the four members shipped before, "
             "trained on the labels as filed, measured 0.789 there and 0.824 on Kermany's. The bundled Kermany "
             "NORMAL sample `data/samples/NORMAL2-IM-1438-0001.jpeg` now gets normal 0.69 (pneumonia 0.30; the "
             "four before: pneumonia 0.91). Children are still a minority of its normal class: use "
             "`pneumonia-kermany` for children."),
            ("Below the project's target (macro-F1 0.90). In this paragraph 'the shipped model' is the single "
             "five-layer model (seed 0 of the recipe; test macro-F1 0.776, validation 0.809) shipped before the "
             "ensembles, the first member of the four shipped before the model of this card. Variants measured here: the default three-layer "
             "simple_cnn at 64 px (30 epochs, 9.5 min) reached test macro-F1 0.718 / accuracy 0.706 / mean "
             "AUROC 0.869, and at 96 px (16 epochs, 7.8 min) 0.730 / 0.717 / 0.866; a slimmed `cxr_cnn5` "
             "(five BatchNorm VGG blocks, 16-128 channels) at 64 px trained far worse on two CPU cores and "
             "was stopped; four layers (32-64-128-128, 5.2 min) gave 0.745 / 0.733 / 0.900; five wider layers "
             "(32-64-128-256-256, 5.1 min) matched the shipped model on validation (macro-F1 0.806 against "
             "0.809) and test (0.777 / 0.765 / 0.917) at three times the size. Variants were compared on "
             "validation; the test figures of each are given for completeness. The shipped "
             "five-layer model still underfits (training loss about 0.41). A quarter-width ResNet-18 "
             "(`resnet18_narrow`: BasicBlocks, 16-32-64-128, 0.7M parameters, 2.8 MB; "
             "`recipes/cxr3class-resnet18n-192.toml`: AdamW + cosine, default augmentation, no class "
             "weights) trained from scratch did not beat it on validation: at 128 px (24 epochs, 2.1 min, "
             "about 5 s an epoch) validation macro-F1 0.788 (test 0.789 / 0.778 / 0.911), at 192 px (60 "
             "epochs, 7.9 min, about 8 s an epoch, training loss 0.35) 0.778 (test 0.775 / 0.765 / 0.911), "
             "against 0.809; both confuse tuberculosis with normal as the shipped model does. With a weight "
             "average (EMA, decay 0.995 a step), label smoothing 0.1 and chest-X-ray augmentation (random "
             "resized crop 0.5-1, contrast 0.25, gamma 0.7-1.45; `recipes/cxr3class-resnet18n-128-ema.toml`, "
             "40 epochs, 10.7 min on shared cores) it reached validation macro-F1 0.792 (mean AUROC 0.935, "
             "against 0.926 here), test 0.797 / 0.783 / 0.920: still below on validation, not shipped. A deep "
             "ensemble (`cxr ensemble`, logits averaged) of this model and the same recipe trained with seeds 1 "
             "and 2 (5.1 min each; `--set test_split=null`, their test unread): the rule written before "
             "evaluating it was to ship it if its validation macro-F1 beat 0.809; the seeds alone reached 0.788 "
             "and 0.789 and the ensemble 0.800 (accuracy 0.794, mean AUROC 0.926): not shipped, its test not "
             "read. Trained three times longer (the same recipe with `--set epochs=90`, 33.9 min on cores "
             "shared with another training run; training loss 0.32 against about 0.41; the rule in "
             "`docs/model-selection.md`: ship if its validation macro-F1 beats 0.809) it kept epoch 53 and "
             "reached validation macro-F1 0.800 (mean AUROC 0.938): not shipped, its test not read; a 96 px "
             "variant registered beside it was dropped before either was evaluated, for time. Joined with the "
             "shipped model (retrained on a faster machine: 10.1 min, epoch 53 again, validation 0.806; and "
             "seed 1, 8.4 min, epoch 27, 0.810), two members reached validation macro-F1 0.800 and three "
             "0.806 against 0.809 (the rule in `docs/model-selection.md`): not shipped, their test not read; "
             "seed 1 alone was not a candidate. Members trained with a weight average (EMA 0.995) and label "
             "smoothing 0.1 (the 18:33 rule; seed 0, 4.4 min, kept epoch 28, validation 0.782; seed 1, 2.9 min, "
             "epoch 21, 0.791) joined with the shipped model: two members 0.807, three 0.8093 against 0.8086: "
             "three shipped (test macro-F1 0.781, accuracy 0.767, mean AUROC 0.917 against the single model's "
             "0.776 / 0.762 / 0.919), a validation gain within noise, shipped because the rule written before "
             "the evaluation said so. Two more such members (the 23:58 rule; seed 2, 4.0 min on cores shared "
             "with a test run, kept epoch 27, validation 0.800; seed 3, 4.1 min, epoch 30, 0.789) joined with "
             "those three: four members 0.820, five 0.816, against the three's 0.809 on the same command: "
             "four shipped (test macro-F1 0.789, accuracy 0.775, mean AUROC 0.918 "
             "against the three's 0.781 / 0.767 / 0.917). At twice the side (the 02:55 UTC rule of 2026-12-07: "
             "`--set input_size=128` with the weight average and label smoothing, seeds 0 and 1, 22.3 and 23.3 min, "
             "kept epochs 19 and 21) one member reached validation macro-F1 0.790 and two 0.786 against the "
             "four's 0.820 on the same command, tuberculosis recall 0.66-0.68 against 0.75: not shipped, their "
             "test not read; larger inputs have not paid for this data on two CPU cores (nor did the "
             "quarter-width ResNet-18 at 128 and 192 px above). A decision rule fitted for macro-F1 (the 06:02 "
             "UTC rule: per-class weights on the probabilities, the decision the class of largest weighted "
             "probability; `python -m tools.decision_rule --model cxr3class`) lost on held-out halves of the "
             "validation split: macro-F1 0.804 against arg-max's 0.819 over 100 halves (fitted and scored on all "
             "validation rows it would have shown 0.832): not shipped, the test not read; decisions stay arg-max. "
             "Answering over six views (the whole image and five crops of 90% of its side, calibrated again on "
             "validation; the 06:05 UTC rule) reached validation macro-F1 0.804 against 0.820: not shipped, the "
             "test not read. Members trained with the chest-X-ray augmentation of the Kermany and merged recipes "
             "(random resized crops of area 0.5-1, rotation 10, contrast 0.25, gamma 0.7-1.45) with the weight "
             "average and label smoothing (the 07:06 UTC rule; seeds 0 and 1, 3.1 min each, kept epochs 25 and "
             "22, validation 0.822 and 0.803 alone) joined with the four: five members 0.816, six 0.814, against "
             "the four's 0.820: not shipped, the test not read; four such members alone (seeds 0-3; the 07:14 UTC "
             "rule) 0.818 (mean AUROC 0.935 against 0.929), and with the shipped four (eight) 0.814: not "
             "shipped, the test not read. A quarter-width ResNet-18 at 128 px initialised from the trunk of one "
             "`all-cxr` member (seed 0 of its recipe, trained on all three collections) and fine-tuned with "
             "`recipes/cxr3class-resnet18n-128-ema.toml` (a one-off script; the project has no option for it): "
             "20 epochs at lr 0.001 (1.3 min) reached validation macro-F1 0.761, the recipe's 40 epochs at 0.002 "
             "(2.4 min) 0.785, against 0.820 (and the same recipe from scratch 0.792): not pursued, the test not "
             "read; pretraining on the other collections did not help here. Every figure so far in this "
             "paragraph is on the labels as the collection files them. The model of this card (the 11:53 UTC "
             "rule of 2026-12-07): the same four members retrained on the rows with Kermany's labels for its "
             "copies (seed 0 of the recipe, and seeds 0-2 with the weight average and label smoothing; 2.2, 2.0, "
             "2.0 and 2.2 min, kept epochs 21, 26, 19 and 20; validation macro-F1 alone 0.830, 0.852, 0.825 and "
             "0.849), joined and calibrated: validation macro-F1 0.840 against 0.820 for the four before on the "
             "same relabelled rows: shipped, its test split read once (macro-F1 0.834, accuracy 0.810, mean "
             "AUROC 0.934; tuberculosis recall 0.665, where the tuberculosis-512 labels below still cost most). "
             "The single model's weights are the best of three seeds on validation, so its validation figure "
             "flatters it, and every candidate above was measured against it. Pretrained features (ImageNet weights from a local file) or a GPU run at higher "
             "resolution are the next step."),
        ],
        "published": [
            ("A 5-block CNN on Normal/Pneumonia/TB: accuracy 75.2%, macro-F1 0.767 (a different split and "
            "possibly different images; not directly comparable)"),
        ],
    },
    "pneumonia-kermany": {
        "title": "Pneumonia vs normal, an ensemble of three ResNets trained on the Kermany pediatric images at 160 px, "
                 "on Kermany's official test split",
        "data": "Training: the 5216 Kermany et al. (Cell 2018; CC BY 4.0) pediatric training images as 224x224 "
                "JPEGs (squashed by the copy's author without keeping the aspect ratio), read at 160x160. Test: "
                "Kermany's official test split (624 children's images: 234 normal, 390 pneumonia; the same "
                "copy, `test_224px/`), collected apart from the training images: the set on which Kermany et al. "
                "report their figures. It was read once for these weights, with the threshold stored at calibration.",
        "split": "Training and validation: our own patient-aware split of Kaggle's training images, stratified by "
                 "class, 85/15, seed 0 (patient id from the file name: personNNN_ for pneumonia, IM-NNNN or "
                 "NORMAL2-IM-NNNN for normal; byte-identical files grouped), no test fraction: the test is the "
                 "official split. The validation split picked the epoch, the threshold and the model among the "
                 "candidates below.",
        "intended_use": "Demonstration of a pediatric pneumonia classifier measured on the benchmark's own test "
                        "split.",
        "limits": [
            "Pediatric images from one centre only; 160 px from 224 px copies squashed to a square.",
            ("The validation split comes from the training pool and does not show the shift to the official test "
             "(validation AUROC 0.997): models trained on these images over-call pneumonia on the official test "
             "(the 64 px model shipped before this one: specificity 0.590 at its Youden threshold). The "
             "threshold policy was therefore fixed before training to the highest validation cut that keeps 90% "
             "sensitivity, a margin against that shift; the 90% figure was chosen from how the policies of the "
             "two earlier models (this one's 64 px predecessor and the 28 px `pneumonia` model) transferred from "
             "validation to their test splits, so it carries information from those earlier reads of this test "
             "split. Kaggle's official validation folder has 16 images (a sanity check only: `python -m "
             "tools.kermany_val`), and PneumoniaMNIST's official validation images are part of the training "
             "pool, so neither can pick a threshold. The table of threshold policies below shows where each "
             "validation-chosen cut lands on the official test; the served one is unchanged."),
            ("How this model was chosen (validation only; `python -m tools.kermany_val --model A --model B ...` "
             "on the 783 validation images none of the candidates trained on, and on val16): the 64 px "
             "`simple_cnn` shipped before (`recipes/pneumonia-kermany64.toml`, 20 epochs) AUROC 0.9940 "
             "(0.990-0.997), val16 0.828; a quarter-width ResNet-18 at 128 px with chest-X-ray augmentation "
             "(random resized crop 0.5-1, rotation 10 degrees, translation 0.05, contrast 0.25, gamma 0.7-1.45, "
             "no flips), class-balanced BCE, dropout 0.2 and 30 epochs (`recipes/pneumonia-kermany128.toml`, "
             "52 min on cores shared with another training run) AUROC 0.9973 (0.995-0.999), val16 1.000, at its "
             "threshold val16 sensitivity 0.50; this model, the same at 160 px with a weight average (EMA 0.998 "
             "a step) and 24 epochs, AUROC 0.9973 (0.995-0.999), val16 1.000, at its threshold val16 "
             "sensitivity 0.75. The rule fixed before reading them: the highest validation AUROC, a tie to the "
             "larger input. An earlier 3-epoch version of the 128 px recipe reached 0.991 and was not shipped. "
             "Tried after this model shipped, under the same rule: the same recipe at 224 px, the training "
             "copy's own size (`recipes/pneumonia-kermany224.toml`, 36.7 min), AUROC 0.9966 (0.994-0.999), "
             "val16 0.938, at its threshold val16 sensitivity 0.625: below this model, not shipped, its "
             "official-test figures not read. "
             "Next came an ensemble (`cxr ensemble`: logits averaged, then calibrated by `cxr calibrate` with the "
             "same policy; Grad-CAM averages the members' maps) of that 160 px model (seed 0) and the same recipe "
             "trained with seed 1 (45.4 min on shared cores; validation AUROC 0.9969 alone). The rule, written "
             "down before either was evaluated: ship the ensemble if its validation AUROC exceeds the single "
             "model's 0.9973 at four decimals. It measured 0.9974 (0.995-0.999), val16 1.000 (at its threshold "
             "val16 sensitivity 0.875): shipped, though the difference is well inside the interval. Its one read "
             "of the official test: AUROC 0.979 against the single model's 0.976, accuracy 0.923 against 0.925, "
             "sensitivity 0.918 against 0.926, specificity 0.932 against 0.923. "
             "The model shipped now adds a third seed. The rule (`docs/model-selection.md`, written before any "
             "candidate was evaluated): join the pair with the recipe trained with seed 2, and with seeds 2 and 3; "
             "ship the one with the higher validation AUROC if it exceeds the pair's 0.9974, a tie to fewer "
             "members. Seeds 2 and 3 (9.0 and 9.7 min on a faster machine) reached 0.9976 and 0.9968 alone; three "
             "members 0.9976 (0.996-0.999), four 0.9975, val16 1.000 for both (at its threshold val16 sensitivity "
             "0.75 for both): three members shipped. Its one read of the official test: AUROC 0.980 against the "
             "pair's 0.979, accuracy 0.925 against 0.923, sensitivity 0.923, specificity 0.927: the accuracy "
             "target (0.93) is still missed, by four images. The served policy is not changed after these reads "
             "(in the table below the 95% sensitivity cut lands higher on the official test for each of the three "
             "models read, and choosing it now would choose on the test). Official-test figures were read for the "
             "single 160 px model, the pair and these three members, once each, each when it shipped. "
             "The model shipped now trains each member twice as long: the three members above had kept their last "
             "or second-to-last epoch (24, 24, 23 of 24), so validation AUROC was still rising when they stopped. "
             "The rule (`docs/model-selection.md`, 20:50 UTC, written before any member was trained): the recipe "
             "with `--set epochs=48` (the cosine schedule and the weight average stretch with it), seeds 0, 1 and "
             "2; candidates A, the three 24-epoch members joined with the 48-epoch seed 0, and B, the three "
             "48-epoch members alone; ship the one with the higher validation AUROC if it exceeds the shipped "
             "three's on the same command. The members trained in 26.1, 25.2 and 27.1 min one after another on "
             "one machine (kept epochs 40, 48 and 27; 0.9984, 0.9975 and 0.9981 alone). A 0.9981 (0.996-0.999), "
             "B 0.9983 (0.997-0.999), the shipped three 0.9976; val16 1.000 for all (at its threshold val16 "
             "sensitivity 0.625 for B): B shipped. Its one read of the official test: AUROC 0.987 (0.980-0.993) "
             "against the 24-epoch three's 0.980, accuracy 0.923 against 0.925, sensitivity 0.908 against 0.923, "
             "specificity 0.949 against 0.927: the AUROC rose, and the accuracy target is still missed, by five "
             "images (576 of 624 right; 0.93 needs 581). The served cut (0.998) sits where the calibrated "
             "validation probabilities crowd against 1. As for each of the three models read before, the 95% "
             "sensitivity cut lands higher on the official test (accuracy 0.952 here); it is still not served, "
             "since four reads of one test split pointing the same way are evidence about that split, and "
             "choosing the policy from them would choose on it. Test-time views (the 06:28 UTC rule of "
             "2026-12-07): these three members answering over the whole image and five crops of 90% of its side "
             "(views of the kind the recipe's random resized crops train on), calibrated again on validation "
             "with the same policy (cut 0.994), reached validation AUROC 0.9980 (0.996-0.999) against 0.9983 "
             "without: not shipped, the official test not read."),
        ],
        "published": [
            ("Kermany et al. 2018 (ImageNet transfer learning, full resolution, the same official test split): "
             "accuracy 92.8%, sensitivity 93.2%, specificity 90.1%, AUROC 0.968"),
        ],
    },
    "all-cxr": {
        "title": "Every pathology from every dataset: 14 NIH labels + Tuberculosis, one model, an ensemble of eight "
                 "answering over six views of each image",
        "data": "Three collections on one 15-label vocabulary (`ml/data/merged.py`): the Kermany et al. (Cell "
                "2018; CC BY 4.0) pediatric images (224 px copies; PNEUMONIA -> Pneumonia 1, NORMAL -> Pneumonia "
                "0, nothing else annotated), the parth-261204 Normal/Pneumonia/Tuberculosis collection (256 px; "
                "pneumonia -> Pneumonia 1 and Tuberculosis 0, tuberculosis -> Tuberculosis 1 and Pneumonia 0, "
                "normal -> both 0) and the 996-image NIH ChestX-ray14 subset at 64 px (its 14 labels; "
                "Tuberculosis not annotated). A label a collection does not annotate is NaN in its rows and is "
                "masked out of the loss and of every figure. Read at 128x128. 559 Kermany images are also in the "
                "3-class set (69 from Kermany's official test split; 122 Kermany NORMAL images filed there as "
                "pneumonia; `python -m tools.collection_copies`, docs/data-audit.md): a training or validation "
                "row copying a row of a later split of another collection is dropped, and of two copies in one "
                "training or validation split the 3-class one, its Tuberculosis 0 passed to the Kermany copy kept "
                "(`ml/data/copies.py`): 554 of 8713 rows, every test split whole. The 3-class rows that copy a "
                "Kermany image carry Kermany's class (`label_authority`: 122 filed as pneumonia are NORMAL in "
                "Kermany's labels; 20 of them in the 3-class test split).",
        "split": "Each collection keeps the split of its single-task model: Kermany, our patient-aware 85/15 split "
                 "of Kaggle's training images for train/val and **Kermany's official test split** (624) for test; "
                 "the 3-class set, our duplicate-aware 70/10/20 split (seed 0); NIH, the CheXNet lists (725 / 94 / "
                 "177). Training batches mix the collections by weight 2:1:1 (Kermany : 3-class : NIH; 2:1:0.5 for five "
                 "of the eight members), whatever "
                 "their sizes. The best epoch was kept by the mean over the collections of each one's mean validation "
                 "AUROC, and the thresholds were chosen on the pooled validation rows.",
        "intended_use": "One model that answers every label the project knows, from one upload; compared with the "
                        "single-task models below, which stay the defaults where they are better.",
        "near_chance_why": ("the NIH labels were learned from 725 training images (4-110 positives per label) at "
                            "64 px, and the NIH test split has a handful of positives for several labels, so their "
                            "intervals are wide. Do not act on these labels' probabilities."),
        "limits": [
            ("Not as good as the single-task models on their own test sets, so it is not served by default "
             "(`CXR_DEFAULT_MODEL` stays `pneumonia`; ask for it with `?model=all-cxr`): Kermany official test "
             "AUROC 0.956 against `pneumonia-kermany`'s 0.987; 3-class macro-F1 0.793 against `cxr3class`'s "
             "0.834 (on the labels as the 3-class set files them: 0.734 against 0.771); NIH mean AUROC 0.719 (95% CI 0.658-0.769) against `nih14`'s 0.674, the one collection "
             "where it is better and the best NIH figure in the project (the eight members trained before the "
             "copies shared by the collections were resolved reached 0.729, see below). The 3-class figure decides "
             "normal/pneumonia/tuberculosis from two sigmoid outputs and their thresholds (the larger ratio to "
             "its threshold, or normal when neither passes), where `cxr3class` has a softmax over the three."),
            ("Each label was learned from one or two collections only (Tuberculosis from the 3-class set, the 13 "
             "other NIH labels from 725 NIH images), so on images from another collection its output is "
             "unvalidated and may answer the collection rather than the finding: the bundled NIH sample "
             "(`data/samples/nih_cxr_1024.png`) gets Tuberculosis 0.65, above its threshold 0.37."),
            ("One threshold per label serves every collection: the Pneumonia threshold (Youden's J on the pooled "
             "Kermany, 3-class and NIH validation rows) is not the one the Kermany shift needs (`pneumonia-kermany` "
             "uses a 90% sensitivity policy for it)."),
            ("How it was trained and chosen (validation only; `python -m tools.quality --recipe "
             "recipes/all-cxr-merged.toml --run RUN --val-only`): an earlier 3-epoch candidate at 64 px (10.5 min) "
             "reached Kermany Pneumonia AUROC 0.907, 3-class macro-F1 0.538, NIH 0.632. This recipe (20 epochs, "
             "128 px, weights 2:1:1, dropout 0.2, weight average 0.998) first kept its best epoch by the pooled "
             "mean AUROC over the 15 labels, which NIH's 14 labels on 94 validation images dominate: it kept "
             "epoch 6 of 20 (Kermany 0.976, 3-class macro-F1 0.683, NIH 0.674). Training now keeps the epoch "
             "with the best mean over the collections of each one's mean AUROC; retrained (same seed, 43.3 min on "
             "cores shared with another run) it kept epoch 20: Kermany 0.988, 3-class macro-F1 0.718, NIH 0.648 "
             "on validation. These weights, calibrated on the pooled validation rows (one temperature and bias "
             "per label), were shipped; their test split was read once: Kermany 0.951, 3-class macro-F1 0.654, "
             "NIH 0.679. The model shipped now is an ensemble (`cxr ensemble`, logits averaged; `cxr calibrate "
             "--val-only`) of those weights and the recipe trained with seeds 1 and 2 (`--set test_split=null`; "
             "36.0 min on cores shared with another run and 10.2 min alone on a faster machine; they kept epochs "
             "10 and 13). The rule (`docs/model-selection.md`, written before any candidate was evaluated): "
             "three members against four (seeds 0-3; a fifth was dropped for time before any evaluation), the "
             "higher selection score (the mean over the collections of each one's mean validation AUROC) shipped "
             "if above the single model's 0.8528. Three members: 0.8566 (Kermany 0.988, 3-class 0.916, NIH "
             "0.666; 3-class macro-F1 0.750); four: 0.8560 (0.988, 0.914, 0.666): three shipped, its test split "
             "read once. Members trained on another mix (the recipe with the NIH share doubled, weights 1:1:2, "
             "seeds 0 and 1, 6.7 and 7.8 min) joined to the three, by the same rule: four members 0.8549 "
             "(0.987, 0.920, 0.658), five 0.8514 (0.986, 0.927, 0.641): not shipped, their test unread; the "
             "725 NIH training images drawn about four times an epoch overfit. The other way (the next rule in "
             "`docs/model-selection.md`): a member trained with the NIH share halved (weights 2:1:0.5, seed 0, "
             "7.7 min, kept epoch 18) joined to the three scored 0.8604 (Kermany 0.991, 3-class 0.923, NIH 0.668; "
             "3-class macro-F1 0.772) and was shipped, its test split read once (Kermany 0.955, 3-class macro-F1 "
             "0.718, NIH 0.707; the three before them 0.952, 0.716, 0.707). Two more of that kind (seeds 1 and 2, "
             "6.5 and 7.6 min, kept epochs 20 and 15; the 18:33 rule): five members 0.8610, six 0.8618 (Kermany "
             "0.991, 3-class 0.920, NIH 0.674; 3-class macro-F1 0.768) against the four's 0.8604: six shipped, "
             "its test split read once (Kermany 0.958, 3-class macro-F1 0.707, NIH 0.7199). Two more of that kind "
             "(seeds 3 and 4, 11.4 and 13.7 min on cores shared with a test run, kept epochs 12 and 20; the 23:58 "
             "rule): seven members 0.8620, eight 0.8645 (Kermany 0.9913, 3-class 0.9225, NIH 0.6798; 3-class "
             "macro-F1 0.774) against the six's 0.8618: eight shipped, the model of this card, its test split "
             "read once: Kermany 0.958, 3-class macro-F1 0.725, NIH 0.718 (the validation gain on NIH, 0.674 to "
             "0.680 on 94 images, did not carry to its 177 test images). Test-time views (the 06:05 UTC rule of "
             "2026-12-07): the same eight members answering with their logits averaged over the whole image and "
             "five crops of 90% of its side (views of the kind the recipe's random resized crops train on), "
             "calibrated again on validation with them (`cxr calibrate --val-only --tta crops`, 1.7 min), scored "
             "0.8652 (Kermany 0.9906, 3-class 0.9236, NIH 0.6815; 3-class macro-F1 0.765) against 0.8645 without "
             "them on the same command: shipped, its test split read once: Kermany 0.958, "
             "3-class macro-F1 0.724, NIH 0.729. The validation margin (0.0007) is within noise; the rule said "
             "ship. Each answer costs six forward passes of the eight members (one batch of six views). The "
             "mirror (`tta = \"hflip\"`) was not tried: no recipe trains on flipped images, and a chest "
             "radiograph is not left-right symmetric. Every model above trained on the 3-class set's copies of "
             "69 Kermany official-test images (55 in its training split) and on Kermany copies of 102 3-class "
             "test images (docs/data-audit.md; `python -m tools.copy_leak --checkpoint` on the eight with the "
             "views: Kermany official test AUROC 0.955 on the 559 rows without a copy in training, 0.980 on the "
             "65 with one), so their Kermany and 3-class test figures are not figures on unseen images; their "
             "NIH figures are (NIH shares no image). The model of this card is the same composition retrained on "
             "the rows with those copies resolved (the 09:04 UTC rule of 2026-12-07 in "
             "`docs/model-selection.md`, fixed before training: it replaces the eight whatever its figures). "
             "A first retrain that only dropped the 3-class copies lost tuberculosis on validation (AUROC "
             "0.597): 307 of the 3-class training split's 309 pneumonia images are Kermany copies, and without "
             "them no training row said that a child's radiograph is not tuberculosis; the kept Kermany copies "
             "now carry the 3-class set's Tuberculosis 0 (the 09:58 amendment; that retrain not shipped, its "
             "test unread). Retrained so (eight runs, 5.1-6.1 min each, kept epochs 12, 14, 10, 15, 13, 13, 12, "
             "20), joined, calibrated with the views on validation: validation Kermany 0.990, 3-class 0.907 "
             "(macro-F1 0.753), NIH 0.684 (on the resolved validation rows, not comparable with the figures "
             "above); its test split read once: Kermany official test AUROC 0.956 (0.939-0.971), 3-class "
             "macro-F1 0.734 (Pneumonia AUROC 0.969, Tuberculosis 0.871), NIH mean AUROC 0.719 (0.658-0.769), "
             "just below the issue's 0.72. Then the 3-class rows that copy Kermany images took Kermany's labels "
             "(the 11:53 UTC rule of 2026-12-07: 122 NORMAL children's images filed as pneumonia; 20 of them in "
             "the 3-class test split, 6 in validation, and one training row, a copy of an image of Kermany's "
             "16-image val folder, which `merged` does not read: every other training row the members saw is "
             "unchanged). The same weights, not retrained, with their calibration and thresholds as fitted, "
             "measured again on the relabelled test rows (`python -m tools.quality --model all-cxr`): 3-class "
             "macro-F1 0.793 and Pneumonia AUROC on the 3-class rows 0.998 (on the labels as filed 0.734 and "
             "0.969), Tuberculosis 0.871; the Kermany and NIH figures cannot change and did not."),
        ],
        "published": [
            ("torchxrayvision (Cohen et al., MIDL 2022) trains one DenseNet-121 on many chest X-ray datasets "
             "with labels a dataset lacks masked, the approach followed here at a far smaller scale."),
        ],
    },
    "nih14": {
        "title": "14 NIH ChestX-ray14 findings through the ChestMNIST code path (28 px)",
        "data": "data/chestmnist-nih1000: 996 real NIH ChestX-ray14 images (NIH Clinical Center, public) "
                "at 28x28 in the ChestMNIST layout and label order. **Not official ChestMNIST**: a curated, "
                "roughly balanced normal/abnormal subset (264 patients). With the full `chestmnist.npz` "
                "the same recipe trains on ChestMNIST (`--data /path/to/chestmnist.npz`).",
        "split": "By CheXNet list membership: train 725, val 94, test 177. **Not patient-disjoint** (the "
                 "subset has only 264 patients and its source repository did not split by patient), so "
                 "the figures are optimistic even for this subset.",
        "intended_use": "Exercises the 14-label multi-label path end to end on real images; a starting point "
                        "for a ChestMNIST retrain.",
        "near_chance_why": ("the model learned from 725 training images (4-110 positives per label; Pneumonia 4, "
                            "Hernia 9) at 28 px, where small findings (nodules, masses, pneumothorax) are a pixel "
                            "or two; the test split has a handful of positives for several labels, so their "
                            "intervals are wide. Do not act on these labels' probabilities."),
        "limits": [
            ("Trained on 725 images: weak, with wide intervals. Several labels have 0-3 positives in the "
            "test split: their AUROC is undefined (no positives) or unreliable (a handful), and the "
            "mean AUROC is over the labels where it is defined."),
            "Labels are text-mined from reports (NIH) and noisy; at 28 px most findings are barely visible.",
            ("Thresholds were chosen on 94 validation images with 0-23 positives per label (Hernia none: it "
            "keeps 0.5), so the precision/recall figures are fragile too."),
            ("Variant tried, not shipped: the same recipe with a weight average (`--epochs 60 --set "
             "ema_decay=0.99`, 0.6 min): validation mean AUROC 0.671 against this model's 0.670, no "
             "difference on 94 images (its run's test 0.644)."),
            ("Variants tried at 64 px, not shipped: the same 996 images at their source's 64 px "
             "(`../shared/data/nih-chestxray14/nih1000_64px_dinbe0527`, made gray, in this file's split, order "
             "and labels; a one-off conversion, not kept) with `--set input_size=64`: validation mean AUROC 0.638 "
             "(best epoch 1, 1.6 min), and with a weight average (`--epochs 60 --set ema_decay=0.99`, 3.2 min) "
             "0.631: below this model (their runs' tests 0.490 and 0.552)."),
            ("Answers over six views (the 07:37 UTC rule of 2026-12-07 in `docs/model-selection.md`): the weights "
             "shipped before, unchanged, with their logits averaged over the whole image and five crops of 90% "
             "of its side, calibrated again on validation with them; validation mean AUROC 0.67017 against "
             "0.67010 without (the rule compared at four decimals: 0.6702 against 0.6701, a margin that is "
             "noise), so shipped; test mean AUROC 0.674 (0.622-0.720) against 0.661 (0.602-0.707) on the image "
             "alone."),
        ],
        "published": [
            ("ChestMNIST (official, 78k train) mean AUROC: ResNet-18 (28) 0.768, ResNet-50 0.769, AutoML 0.778; "
            "DenseNet-121 at 224 about 0.82 (MedMNIST+); CheXNet DenseNet-121 on NIH at full resolution "
            "0.841. Not comparable: our data is a 1000-image curated subset."),
        ],
    },
}


AUDIT_SUSPECT = "tuberculosis-512"


def load_audit(name: str) -> dict[str, Any] | None:
    """A label audit's raw figures from bench/results/, or None when it has not been run here."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def audit_limit_lines(audit: dict[str, Any] | None) -> list[str]:
    """The card's limit that cites the 3-class label audit (`python -m tools.cxr3class_audit`)."""
    if audit is None:
        return [("Label noise in the tuberculosis class is measured by `python -m tools.cxr3class_audit` "
                 "(not run where this card was generated).")]
    s = AUDIT_SUSPECT
    exact, near = audit["duplicates"]["exact"]["total"], audit["duplicates"]["near"]["total"]
    normal_tb = audit["duplicates"]["near"]["by_class_pair"].get("normal/tuberculosis", {}).get("pairs", 0)
    copies = audit["duplicates"]["near"]["images_with_copy_in_other_class"].get(s, 0)
    unflagged = [f"{k.removesuffix(' (unflagged)')}: {n}" for k, n in
                 audit["duplicates"]["near"].get("by_sub_collection_pair", {}).items() if k.endswith("(unflagged)")]
    probes = audit["probes"]["pixels"]
    acc = audit["per_group_accuracy"]
    per_split = "/".join(f"{acc[k][s]['accuracy']:.1%}" for k in ("train", "val", "test") if s in acc.get(k, {}))
    f1 = audit["macro_f1_test"]
    looks_normal = max(probes.get(f"normal-512 vs {s}", 1), probes.get(f"normal-1024 vs {s}", 1)) < 0.65
    return [(
        f"Label audit (`python -m tools.cxr3class_audit`; diagnostics, not results): {exact['pairs']} pairs of "
        f"images with identical decoded pixels and {near['pairs']} near-identical pairs sit in two classes "
        f"({normal_tb} normal/tuberculosis); the data set's index flags {near['flagged']} of them, "
        f"{near['unflagged']} it does not" + (f" ({', '.join(unflagged)})" if unflagged else "") + ", and this "
        f"split's average-hash groups drop {near['dropped_by_split']}. {copies} of "
        f"{audit['sub_collections'].get(s, 0)} images of the tuberculosis 512 px sub-collection have a copy "
        f"filed under another class. A logistic-regression probe on 16x16 pixels tells that sub-collection from the "
        f"normal 512 px images at AUROC {probes.get(f'normal-512 vs {s}', float('nan')):.3f} and from the "
        f"normal 1024 px ones at {probes.get(f'normal-1024 vs {s}', float('nan')):.3f} (0.5 is chance; "
        f"tuberculosis of the other sub-collections against normal: {probes.get('control', float('nan')):.3f}). "
        f"The model gets {per_split} of it right on train/val/test. Test macro-F1 would be "
        f"{f1['suspect_all_right']:.3f} if every such test image were right and is {f1['suspect_excluded']:.3f} "
        f"without them, against {f1['as_shipped']:.3f} as shipped: "
        + (("the sub-collection looks like normal images filed as tuberculosis (a linear probe cannot rule out "
            "subtle disease, but its copies filed under another class show its labels are at least partly wrong)"
            + (", and even with it right the model stays below 0.90." if f1["suspect_all_right"] < 0.90 else
               "; with it right the model would reach 0.90.")) if looks_normal else
           "the sub-collection is separable from normal images, so the gap is not explained by its labels.")
    )]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "n/a" if not ci else f"{ci[0]:.3f}-{ci[1]:.3f}"


def _metrics_table(split: dict[str, Any], multiclass: bool) -> list[str]:
    lines = ["| label | AUROC | 95% CI | precision | recall | F1 | threshold | positives | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in split["per_class"].items():
        thr = "arg-max" if multiclass else f"{c['threshold']:.3f}"
        lines.append(f"| {name} | {_fmt(c['auroc'])} | {_ci(c['auroc_ci'])} | {c['precision']:.3f} | "
                     f"{c['recall']:.3f} | {c['f1']:.3f} | {thr} | {c['support']}/{split['n']} | "
                     f"{c['auroc_note']} |")
    return lines


def _summary(split: dict[str, Any]) -> str:
    parts = [f"mean AUROC **{_fmt(split['mean_auroc'])}** (95% CI {_ci(split['mean_auroc_ci'])})"]
    if "accuracy" in split:
        parts.append(f"accuracy **{split['accuracy']:.3f}**")
    if "accuracy_at_0.5" in split:
        parts.append(f"accuracy at threshold 0.5: {split['accuracy_at_0.5']:.3f}")
    parts.append(f"macro-F1 {split['macro_f1']:.3f}, micro-F1 {split['micro_f1']:.3f}")
    parts.append(f"macro precision {split['macro_precision']:.3f}, macro recall {split['macro_recall']:.3f}")
    return "; ".join(parts)


def calibration_lines(cal: dict[str, Any] | None) -> list[str]:
    """The card's calibration section (issue 17): how the probabilities were calibrated and ECE/Brier."""
    if not cal:
        return ["## Calibration", "", "None: the probabilities are the model's raw outputs.", ""]
    how = ("a temperature and a bias per label (Platt scaling)" if cal["method"] == "platt"
           else "one temperature" + (" per label" if len(set(cal["temperatures"])) > 1 else ""))
    rows = [f"| {s} | {f['n']} | {f['ece_before']:.4f} | {f['ece_after']:.4f} | {f['brier_before']:.4f} | "
            f"{f['brier_after']:.4f} |" for s, f in cal["splits"].items()]
    return ["## Calibration", "",
            (f"Served probabilities are calibrated by {how}, fitted on the {cal['fitted_on']} split "
             "(`cxr calibrate`), and the thresholds above were chosen on the calibrated validation outputs. "
             "ECE: 15 equal-width bins over every (image, label) probability (multi-class: the top class); "
             "Brier: mean squared error."), "",
            "| split | n | ECE before | ECE after | Brier before | Brier after |", "|---|---|---|---|---|---|",
            *rows, ""]


def _operating_lines(r: dict[str, Any]) -> list[str]:
    t = r["test"]
    if "specificity" not in t:
        return []
    return ["", (f"At the served threshold {r['thresholds'][0]:.3f}: sensitivity **{t['sensitivity']:.3f}**, "
                 f"specificity **{t['specificity']:.3f}**, accuracy **{t['accuracy']:.3f}**.")]


def near_chance(split: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Labels whose test AUROC interval reaches 0.5 (or, without an interval, AUROC below 0.6), and labels
    whose AUROC cannot be measured on this test set."""
    near, unmeasured = [], []
    for name, c in split["per_class"].items():
        if c["auroc"] is None or (c["auroc_ci"] is None and c["auroc_note"]):
            unmeasured.append(name)
        elif (c["auroc_ci"] and c["auroc_ci"][0] <= 0.5) or (not c["auroc_ci"] and c["auroc"] < 0.6):
            near.append(name)
    return near, unmeasured


def _near_chance_lines(test: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    near, unmeasured = near_chance(test)
    if not near and not unmeasured:
        return ["", "Every label's test AUROC interval lies above chance (0.5)."]
    parts = []
    if near:
        parts.append(f"**Near chance** (95% interval reaching 0.5): {', '.join(near)}")
    if unmeasured:
        parts.append(f"**not measurable here** (no or fewer than 5 test positives): {', '.join(unmeasured)}")
    why = facts.get("near_chance_why")
    return ["", "; ".join(parts) + "." + (f" Why: {why}" if why else "")]


def _policy_lines(r: dict[str, Any]) -> list[str]:
    """How each threshold policy, chosen on validation, lands on test (binary models)."""
    rows = r.get("threshold_policies")
    if not rows:
        return []
    lines = ["", "### Threshold policies: chosen on validation, where they land on test", "",
             (f"Served: `{r['threshold_policy']}`, fixed in the recipe before the test split was read. The other "
              "rows use the same probabilities (one read of the test) and show how each policy transfers."), "",
             ("| policy | threshold | val sensitivity | val specificity | test sensitivity | test specificity | "
              "test accuracy |"), "|---|---|---|---|---|---|---|"]
    for row in rows:
        v, t = row["val"], row["test"]
        lines.append(f"| {row['policy']} | {row['threshold']:.3f} | {v['sensitivity']:.3f} | {v['specificity']:.3f} | "
                     f"{t['sensitivity']:.3f} | {t['specificity']:.3f} | {t['accuracy']:.3f} |")
    return lines


def _source_lines(test: dict[str, Any]) -> list[str]:
    """Per-dataset, per-label test AUROC with intervals (merged datasets)."""
    if not test.get("by_source"):
        return []
    lines = ["", "### Test figures per dataset", "",
             ("Labels a dataset does not annotate are left out (they are NaN in its rows and masked from every "
              "metric)."), "", "| dataset | label | AUROC | 95% CI | positives | note |", "|---|---|---|---|---|---|"]
    for source, f in test["by_source"].items():
        lines.append(f"| **{source}** | mean | {_fmt(f['mean_auroc'])} | {_ci(f['mean_auroc_ci'])} | n={f['n']} | |")
        if "three_class" in f:
            lines.append(f"| {source} | normal/pneumonia/tuberculosis macro-F1 | "
                         f"{f['three_class']['macro_f1']:.3f} | | n={f['three_class']['n']} | accuracy "
                         f"{f['three_class']['accuracy']:.3f} |")
        for name, c in f["per_class"].items():
            if c.get("annotated") == 0:
                continue
            lines.append(f"| {source} | {name} | {_fmt(c['auroc'])} | {_ci(c['auroc_ci'])} | {c['support']} | "
                         f"{c['auroc_note']} |")
    return lines


def ensemble_members(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The members of a manifest entry that is an ensemble of its recipe (none for a single model): each a
    `seed`, with optional `dataset_options` and `params` that override the recipe's for that member."""
    members = [dict(m) for m in entry.get("ensemble_members", [])]
    for m in members:
        if not isinstance(m.get("seed"), int) or set(m) - {"seed", "dataset_options", "params"}:
            raise ValueError(f"{entry['name']}: an ensemble member is a seed with optional dataset_options and "
                             f"params; got {m}")
    plain = [m["seed"] for m in members if m.keys() == {"seed"}]
    if len(plain) != len(set(plain)):
        raise ValueError(f"{entry['name']}: a seed appears twice without overrides (the same member twice): {plain}")
    return members


def member_run_name(member: dict[str, Any], index: int) -> str:
    """The run folder of the ensemble's member number `index` (from 0): its seed, and when it overrides the
    recipe, its place (a seed may recur with other overrides)."""
    return f"seed{member['seed']}" + (f"-variant{index}" if member.keys() - {"seed"} else "")


def _flags(flag: str, values: dict[str, Any], prefix: str = "") -> list[str]:
    """`--flag a.b=VALUE` for each leaf of `values` (VALUE as JSON, which the cxr command parses back)."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += _flags(flag, value, f"{prefix}{key}.")
        else:
            out.append(f"{flag} {prefix}{key}={json.dumps(value)}")
    return out


TTA_WORDS = {"hflip": "the logits of the image and its mirror averaged",
             "crops": "the logits of six views averaged: the whole image and five crops of 90% of its side (the "
                      "centre and the four corners) resized back to the input"}


def _training_lines(r: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """The commands that train the model alone: one run, or for an ensemble one run per member, joined and
    calibrated."""
    members = ensemble_members(entry)
    if not members:
        return [f"python -m cxr train --config {r['recipe']} --out runs/{r['name']}   # the training alone"]
    runs = [f"runs/{r['name']}-{member_run_name(m, i)}" for i, m in enumerate(members)]
    out = f"runs/{r['name']}-ensemble.pt"
    return [*(" ".join([f"python -m cxr train --config {r['recipe']} --seed {m['seed']}",
                        *_flags("--dataset-option", m.get("dataset_options", {})),
                        *_flags("--set", m.get("params", {})), f"--out {run}"])
              for m, run in zip(members, runs, strict=True)),
            f"python -m cxr ensemble {' '.join(f'{run}/model.pt' for run in runs)} --out {out}",
            (f"python -m cxr calibrate {out} --config {r['recipe']} --val-only   # calibration and thresholds on "
             "validation")]


def render_card(r: dict[str, Any], entry: dict[str, Any]) -> str:
    """The markdown card for one `tools.quality` result."""
    facts = CARDS.get(r["name"], {})
    multiclass = r["task"] == "multiclass"
    dc, p = r["data_config"], r["train_config"]["params"]
    tr = r.get("training")
    trained = (f"{tr['train_seconds'] / 60:.1f} min wall clock on {tr['device']} with {tr.get('threads')} "
               f"threads ({tr['epochs']} epochs, best epoch {tr['best_epoch']}; machine shared with other jobs)"
               if tr else "not recorded")
    if multiclass:
        thresholds = "None: the decision is the most probable class (arg-max)."
    else:
        policy = {"youden": "maximum Youden's J (sensitivity + specificity - 1, i.e. balanced accuracy)",
                  "youden_mid": "the middle of the cuts within 0.02 of the maximum Youden's J (balanced "
                                "accuracy within one point of its best)",
                  "f1": "maximum F1",
                  "sensitivity": f"the highest cut that keeps validation sensitivity at "
                                 f"{p.get('threshold_sensitivity', 0.95):.2f} (all the specificity validation "
                                 f"allows at that sensitivity)"}.get(r["threshold_policy"], r["threshold_policy"])
        thresholds = (f"Per label, chosen on the **validation** split by {policy}, stored in the checkpoint and "
                      f"used unchanged on test: " + ", ".join(
                          f"{n} {t:.3f}" for n, t in zip(r["labels"], r["thresholds"], strict=True)) + ".")
    kwargs = f" {r['model_kwargs']}" if r["model_kwargs"] else ""
    test, val = r["test"], r["val"]
    bs = test["bootstrap"]
    lines = [
        f"# Model card: `{r['name']}` ({facts.get('title', entry.get('description', ''))})",
        "",
        "**Not for clinical use.** Generated by `python -m tools.quality --model " + r["name"] + " --ship`; "
        "every figure below was measured on this project's machines.",
        "",
        "## Model",
        "",
        (f"- Architecture: `{r['model_name']}`{kwargs}; weights `models/{entry['path']}` "
        f"({r['size_bytes'] / 1e6:.2f} MB); labels {', '.join(r['labels'])} ({r['task']})."),
        (f"- Input: {dc['input_size']}x{dc['input_size']} px, {dc['in_chans']} channel(s), resize '{dc['resize_mode']}', "
        f"normalisation '{dc['normalization']}'."),
        (f"- Training: recipe `{r['recipe']}`: {p['epochs']} epochs, batch {p['batch_size']}, {p['optimizer']} "
        f"lr {p['lr']}, {p['scheduler']} schedule, loss '{p['loss']}'"
        f"{' with class-balanced positive weights' if p.get('pos_weight') else ''}, "
        f"augmentation {'on' if p['augment']['enabled'] else 'off'}, seed {p['seed']}; the best epoch by "
        f"validation mean AUROC{' (the mean over the collections of their mean AUROCs)' if 'by_source' in r['val'] else ''}"
        f" is kept. Trained in {trained}."),
        *([(f"- Test-time views: {TTA_WORDS.get(r['tta'], r['tta'])}; every figure below, the thresholds and "
            "the calibration are on those averages, and `/predict` answers with them.")]
          if r.get("tta") not in (None, False, "none") else []),
        "",
        "## Data",
        "",
        facts.get("data", ""),
        "",
        "## Split",
        "",
        facts.get("split", ""),
        "Rows: " + ", ".join(f"{k} {r['split_sizes'][k]}" for k in sorted(
            r["split_sizes"], key=lambda s: ("train", "val", "test").index(s) if s in ("train", "val", "test") else 9)
        ) + ".",
        "",
        "## Thresholds",
        "",
        thresholds,
        "",
        *calibration_lines(r.get("calibration")),
        f"## Test figures (n={test['n']})",
        "",
        f"Test set: {r.get('test_set', 'the test split of the recipe data')}.",
        "",
        _summary(test) + ".",
        *_operating_lines(r),
        "",
        *_metrics_table(test, multiclass),
        "",
        (f"95% intervals: percentile bootstrap over test rows, {bs['resamples']} resamples, seed {bs['seed']}. "
        "AUROC is undefined for a label without positives (or negatives) and unreliable with fewer than 5."),
    ]
    if "confusion_matrix" in test:
        header = r["labels"] if multiclass else ["negative", "positive"]
        lines += ["", "Confusion matrix (rows: truth, columns: decision): " + "; ".join(
            f"{h}: {row}" for h, row in zip(header, test["confusion_matrix"], strict=True)) + "."]
    lines += _near_chance_lines(test, facts) + _policy_lines(r) + _source_lines(test)
    lines += [
        "",
        f"Validation (n={val['n']}, where thresholds and the best epoch were chosen): {_summary(val)}.",
        "",
        "## Published reference points (not measured here)",
        "",
        *[f"- {line}" for line in facts.get("published", [])],
        "",
        "## Intended use",
        "",
        facts.get("intended_use", ""),
        "",
        "## Limits",
        "",
        *[f"- {line}" for line in COMMON_LIMITS + facts.get("limits", []) + (
            audit_limit_lines(load_audit(facts["audit"])) if "audit" in facts else [])],
        "",
        "## Reproduce",
        "",
        "```",
        f"python -m tools.quality --model {r['name']}                      # these figures, from the shipped weights",
        f"python -m tools.quality --model {r['name']} --retrain            # train from the recipe (same seed), then measure",
        *_training_lines(r, entry),
        "```",
        "",
        ("Recipes read `../shared/data/...` relative to the repository root; give another location with "
        "`--data DIR` (bench) or `--data PATH` (cxr train)."),
        "",
    ]
    return "\n".join(lines)
