import pytest

from bipa.utils import ConfigError, check_choice


def test_a_choice_passes():
    assert check_choice('full', ('full', 'depthwise'), 'model.neck.multiscale_conv') is None


@pytest.mark.parametrize('error', [ConfigError, ValueError])
def test_another_value_raises_one_line_naming_key_choices_and_value(error):
    with pytest.raises(error) as info:
        check_choice('dense', ['full', 'depthwise'], 'model.neck.multiscale_conv', error)
    assert type(info.value) is error
    assert str(info.value) == ("model.neck.multiscale_conv must be one of ('full', 'depthwise'), "
                               "got 'dense'")


def test_the_alternative_is_named():
    with pytest.raises(ValueError, match=r"^arch must be one of \('vit_b',\) or a dict, got 1$"):
        check_choice(1, {'vit_b': {}}, 'arch', alternative='a dict')
