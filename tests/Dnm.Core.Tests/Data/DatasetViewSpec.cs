using Dnm.Core.Data;
using Dnm.Core.Tests.Data.Shards;

namespace Dnm.Core.Tests.Data;

public sealed class DatasetViewSpec
{
    private static readonly ImageShape Shape = new(1, 2, 2);

    [Fact]
    public void A_limit_should_be_a_seeded_random_subset_from_every_class_in_the_base_order()
    {
        // 1000 samples whose class is index / 100: the first 100 files are all class 0, as in a folder in path order.
        var data = new SortedClasses(1000);

        var a = DatasetView.Subset(data, 100, seed: 7);
        var b = DatasetView.Subset(data, 100, seed: 7);
        var c = DatasetView.Subset(data, 100, seed: 8);

        var keys = (IImageDataset d) => Enumerable.Range(0, d.Count).Select(d.Key).ToArray();
        Assert.Equal(100, a.Count);
        Assert.Equal(keys(a), keys(b));
        Assert.NotEqual(keys(a), keys(c));
        Assert.Equal(keys(a).Order(StringComparer.Ordinal), keys(a));
        Assert.Equal(10, Enumerable.Range(0, a.Count).Select(a.Label).Distinct().Count());
        Assert.Same(data, DatasetView.Subset(data, 5000, seed: 7));
    }

    [Fact]
    public void A_key_hash_split_should_partition_the_samples_and_keep_each_key_on_its_side_as_the_dataset_grows()
    {
        var small = new ByteDataset(300, Shape);
        var grown = new ByteDataset(600, Shape);

        var train = DatasetView.KeySplit(small, 0.2, EvaluationSplit.Train);
        var test = DatasetView.KeySplit(small, 0.2, EvaluationSplit.Test);
        var grownTest = DatasetView.KeySplit(grown, 0.2, EvaluationSplit.Test);

        Assert.Equal(300, train.Count + test.Count);
        Assert.InRange(test.Count, 35, 85);
        var testKeys = Enumerable.Range(0, test.Count).Select(test.Key).ToHashSet();
        Assert.DoesNotContain(Enumerable.Range(0, train.Count).Select(train.Key), testKeys.Contains);
        var grownKeys = Enumerable.Range(0, grownTest.Count).Select(grownTest.Key).ToHashSet();
        Assert.Subset(grownKeys, testKeys);
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetView.KeySplit(small, 1.0, EvaluationSplit.Test));
    }

    private sealed class SortedClasses(int count) : IImageDataset
    {
        public string Name => "sorted";
        public int Count => count;
        public ImageShape Shape => DatasetViewSpec.Shape;
        public IReadOnlyList<string> ClassNames { get; } = Enumerable.Range(0, 10).Select(c => c.ToString()).ToArray();
        public int Label(int index) => index / (count / 10);
        public string Key(int index) => index.ToString("D5");
        public void CopyImage(int index, Span<float> destination) => destination.Fill(index);
        public void Dispose() { }
    }
}
