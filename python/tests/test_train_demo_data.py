"""The demo model's training text (python/train_demo_model.py) is MMLU dev+val only: test questions never in it."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import train_demo_model as tdm  # noqa: E402


def write_mmlu(root, rows_by_file):
    for rel, rows in rows_by_file.items():
        path = os.path.join(root, "data", *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(",".join(f'"{c}"' for c in row) + "\n")


@pytest.fixture
def mmlu(tmp_path):
    write_mmlu(
        str(tmp_path),
        {
            "dev/optics_dev.csv": [("What bends light?", "A lens", "A rock", "A spoon", "A cup", "A")],
            "val/optics_val.csv": [
                ("Which colour has the longest wavelength?", "Red", "Blue", "Green", "Violet", "A"),
                # The same question as a test question, differently spaced: must be dropped.
                ("What  focuses light in the eye?", "Lens", "Iris", "Pupil", "Retina", "A"),
            ],
            "test/optics_test.csv": [
                ("What focuses light in the eye?", "Lens", "Iris", "Pupil", "Retina", "A"),
                ("Which mirror makes a real image?", "Concave", "Convex", "Plane", "None", "A"),
            ],
        },
    )
    return str(tmp_path)


def test_only_dev_and_val_files_are_training_text_and_test_duplicates_are_dropped(mmlu):
    kept, dropped, files, test_keys = tdm.training_questions(mmlu)
    assert files == [os.path.join("data", "dev", "optics_dev.csv"), os.path.join("data", "val", "optics_val.csv")]
    assert [q for _, q, _, _, _ in kept] == ["What bends light?", "Which colour has the longest wavelength?"]
    assert [q for _, q, _, _, _ in dropped] == ["What  focuses light in the eye?"]
    documents = tdm.corpus_documents(kept)
    text = "\n".join(documents)
    assert "Which mirror makes a real image?" not in text
    assert "focuses light" not in text
    assert "Answer: A" in text and text.startswith("The following are multiple choice questions (with answers) about optics.")
    tdm.check_no_test_text(documents, test_keys)  # passes: nothing leaked


def test_a_test_question_in_the_corpus_stops_the_run(mmlu):
    kept, _, _, test_keys = tdm.training_questions(mmlu)
    leaked = kept + [("optics", "Which mirror makes a real image?", ["Concave", "Convex", "Plane", "None"], "A", "x")]
    with pytest.raises(SystemExit, match="1 test question"):
        tdm.check_no_test_text(tdm.corpus_documents(leaked), test_keys)


def test_a_missing_split_folder_is_named(tmp_path):
    write_mmlu(str(tmp_path), {"dev/optics_dev.csv": [("Q?", "a", "b", "c", "d", "A")]})
    with pytest.raises(SystemExit, match=r"data/test does not exist"):
        tdm.training_questions(str(tmp_path))


def test_a_malformed_row_names_the_file_and_row(mmlu):
    with open(os.path.join(mmlu, "data", "val", "optics_val.csv"), "a", encoding="utf-8") as f:
        f.write('"Too few fields","a","b"\n')
    with pytest.raises(SystemExit, match=r"optics_val\.csv row 3: expected question, 4 choices and an answer letter"):
        tdm.training_questions(mmlu)
