using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

/// <summary>The digest cluster nodes compare at registration: the files' names, sizes and contents, not where they are mounted.</summary>
public sealed class DatasetDigestSpec
{
    [Fact]
    public void The_same_files_at_another_path_should_have_the_same_digest_and_one_changed_byte_another()
    {
        using var dir = new ScratchDirectory();
        string Write(string folder, byte last)
        {
            Directory.CreateDirectory(dir.File(folder));
            File.WriteAllBytes(dir.File(folder, "images.idx"), [0, 0, 8, 3, 1, 2, 3, last]);
            File.WriteAllBytes(dir.File(folder, "labels.idx"), [0, 0, 8, 1, 9]);
            return $"idx:{dir.File(folder, "images.idx")},{dir.File(folder, "labels.idx")}";
        }
        var a = DatasetDigest.Of(Write("a", 4), "train", dir.Path);
        var b = DatasetDigest.Of(Write("b", 4), "train", dir.Path);
        var c = DatasetDigest.Of(Write("c", 5), "train", dir.Path);

        Assert.Equal(a.Sha256, b.Sha256);
        Assert.NotEqual(a.Sha256, c.Sha256);
        Assert.Equal(64, a.Sha256.Length);
        Assert.EndsWith(" train: 2 file(s), 13 bytes", a.Source);
        Assert.StartsWith($"idx:{dir.File("a", "images.idx")}", a.Source);
    }

    [Fact]
    public void A_folder_digest_should_cover_every_file_by_its_relative_path()
    {
        using var dir = new ScratchDirectory();
        foreach (var root in new[] { "x", "y" })
        {
            Directory.CreateDirectory(dir.File(root, "cats"));
            File.WriteAllBytes(dir.File(root, "cats", "1.png"), [1, 2, 3]);
        }
        var x = DatasetDigest.Of($"folder:{dir.File("x")}", "train", dir.Path);
        Assert.Equal(x.Sha256, DatasetDigest.Of($"folder:{dir.File("y")}", "train", dir.Path).Sha256);

        // The same bytes under another class folder are another dataset (another label).
        Directory.CreateDirectory(dir.File("y", "dogs"));
        File.Move(dir.File("y", "cats", "1.png"), dir.File("y", "dogs", "1.png"));
        Assert.NotEqual(x.Sha256, DatasetDigest.Of($"folder:{dir.File("y")}", "train", dir.Path).Sha256);
    }
}
