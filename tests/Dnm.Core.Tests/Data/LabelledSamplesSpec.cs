using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Tests.Training;

namespace Dnm.Core.Tests.Data;

public class LabelledSamplesSpec
{
    private static string[] Keys(int n) => Enumerable.Range(0, n).Select(i => $"sample-{i:D5}").ToArray();

    [Fact]
    public void A_samples_membership_depends_on_its_key_and_the_seed_alone()
    {
        var keys = Keys(20_000);
        var tenth = keys.Where(k => LabelledSamples.IsChosen(k, 0.1, 7)).ToHashSet();
        // About the fraction asked for (binomial: σ = 42 samples).
        Assert.InRange(tenth.Count, 1_850, 2_150);
        // The same in any order (a worker's shard, a grown dataset): the key decides, not the position.
        Assert.Equal(tenth, keys.Reverse().Where(k => LabelledSamples.IsChosen(k, 0.1, 7)).ToHashSet());
        // Nested: every sample labelled at 1 % is labelled at 10 %.
        var hundredth = keys.Where(k => LabelledSamples.IsChosen(k, 0.01, 7)).ToHashSet();
        Assert.InRange(hundredth.Count, 140, 260);
        Assert.Subset(tenth, hundredth);
        // Another seed draws another subset; fraction 1 labels everything.
        var otherSeed = keys.Where(k => LabelledSamples.IsChosen(k, 0.1, 8)).ToHashSet();
        Assert.InRange(tenth.Intersect(otherSeed).Count(), 100, 300);
        Assert.All(keys.Take(100), k => Assert.True(LabelledSamples.IsChosen(k, 1.0, 7)));
        // Independent of the key-hash test split (a plain hash of the key would label only held-out samples at 0.1).
        var heldOut = keys.Where(k => DatasetView.IsHeldOut(k, 0.1)).ToHashSet();
        Assert.InRange(tenth.Intersect(heldOut).Count(), 100, 300);
    }

    [Fact]
    public void Should_choose_by_fraction_on_a_dataset_and_be_null_when_unsupervised()
    {
        using var data = InMemoryDataset.Blobs(400, 1);
        Assert.Null(LabelledSamples.For(new DnmConfig(), data));
        var set = LabelledSamples.For(new DnmConfig { LabelledFraction = 0.25, Seed = 3 }, data)!;
        Assert.Equal(Enumerable.Range(0, 400).Where(i => LabelledSamples.IsChosen(data.Key(i), 0.25, 3)).ToArray(), set.Indices);
        Assert.All(set.Indices, i => Assert.True(set.IsLabelled(i)));
        Assert.Contains($"{set.Count} of 400 training samples labelled", set.Description);
        Assert.Equal(4, LabelledSamples.Classes(new DnmConfig { LabelledFraction = 0.25 }, data));
        Assert.Equal(0, LabelledSamples.Classes(new DnmConfig(), data));
    }

    [Fact]
    public void Should_take_the_keys_a_file_lists_and_refuse_a_file_that_names_none()
    {
        using var data = InMemoryDataset.Blobs(10, 1);
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, ["3", "", " 7 ", "not-a-key"]);
            var set = LabelledSamples.For(new DnmConfig { Labelled = file }, data)!;
            Assert.Equal([3, 7], set.Indices);
            Assert.Contains("1 of its 3 keys are not in this training set", set.Description);

            File.WriteAllLines(file, ["x", "y"]);
            var e = Assert.Throws<DataException>(() => LabelledSamples.For(new DnmConfig { Labelled = file }, data));
            Assert.Contains("none of the 2 keys", e.Message);
        }
        finally
        {
            File.Delete(file);
        }
        var missing = Assert.Throws<DataException>(() => LabelledSamples.For(new DnmConfig { Labelled = file }, data));
        Assert.Contains("cannot be read", missing.Message);
    }
}
