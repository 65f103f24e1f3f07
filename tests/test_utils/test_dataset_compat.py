from mmengine.dataset import BaseDataset


class Numbers(BaseDataset):
    def load_data_list(self):
        return [dict(value=i) for i in range(4)]


def test_each_subset_copies_the_dataset_as_it_is_now():
    """mmengine's shared default memo handed the second subset the first
    subset's copy of the (since changed) metainfo and pipeline."""
    dataset = Numbers(metainfo=dict(name='a'), pipeline=[])
    first = dataset.get_subset([0, 1])
    dataset._metainfo['name'] = 'b'
    dataset.pipeline.transforms.append(lambda x: x)
    second = dataset.get_subset([2])
    assert first.metainfo['name'] == 'a' and len(first.pipeline.transforms) == 0
    assert second.metainfo['name'] == 'b' and len(second.pipeline.transforms) == 1
    assert [second[0]['value']] == [2]
