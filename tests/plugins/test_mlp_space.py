from dnc_mlp.space import MLPSpace

from dnc.plugins import DataSpec
from dnc.testing import SearchSpaceContract


class TestMLPSpaceContract(SearchSpaceContract):
    data_spec = DataSpec(input_shape=(1, 8, 8), num_classes=10)

    def make_space(self) -> MLPSpace:
        return MLPSpace()
