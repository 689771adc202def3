using Dnm.Node.Commands;

namespace Dnm.Node.Tests;

public sealed class RunNamesSpec
{
    [Theory]
    [InlineData("mnist", "mnist")]
    [InlineData("fashion-mnist", "fashion-mnist")]
    [InlineData("folder:/data/coil-20/", "coil-20")]
    [InlineData("idx:/tmp/x/train-images-idx3-ubyte.gz,/tmp/x/labels", "train-images-idx3-ubyte")]
    [InlineData("idx:/tmp/my blobs.idx", "my-blobs")]
    [InlineData("folder:/", "run")]
    [InlineData("what?:*", "what")]
    public void Should_turn_a_dataset_spec_into_a_safe_folder_name(string spec, string name) =>
        Assert.Equal(name, RunNames.SafeName(spec));

    [Fact]
    public void Default_out_should_be_under_runs_with_dataset_and_time()
    {
        var now = new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);
        Assert.Equal(Path.Combine("runs", "coil20-20250304-050607"), RunNames.DefaultOut("folder:/data/coil20", now));
    }
}
