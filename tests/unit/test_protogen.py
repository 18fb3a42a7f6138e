from common.protogen import check


def test_generated_code_is_up_to_date() -> None:
    assert check() == [], "run `make proto` and commit the result"
