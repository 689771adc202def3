using Dnm.Core.Evaluation;

namespace Dnm.Core.Tests.Evaluation;

public class MapCsvSpec
{
    [Fact]
    public void Should_write_header_lattice_positions_and_empty_unknown_labels()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("placement.csv");

        // 2×3 lattice: node 4 = row 1, col 1; node 2 = row 0, col 2; node 5 = row 1, col 2.
        string[] keys = ["cats/a.png", "b,\"odd\".png", "c"];
        string[] classes = ["zero", "one", "two", "three", "four", "five", "six", "seven"];
        MapCsv.Write(path, bmu: [4, 2, 5], distance: [0.5f, 1.25f, 0.1f], rows: 2, cols: 3, labels: [7, -1, 0], key: i => keys[i], classNames: classes);

        Assert.Equal(
            new[] { "index,key,label,class,row,col,distance", "0,cats/a.png,7,seven,1,1,0.5", "1,\"b,\"\"odd\"\".png\",,,0,2,1.25", "2,c,0,zero,1,2,0.1" },
            File.ReadAllLines(path));
        Assert.Equal(new[] { "placement.csv" }, dir.FileNames());
    }

    [Fact]
    public void Should_leave_every_label_empty_without_labels()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("placement.csv");

        MapCsv.Write(path, bmu: [0, 1], distance: [2f, 3f], rows: 1, cols: 2);

        Assert.Equal(new[] { "index,key,label,class,row,col,distance", "0,,,,0,0,2", "1,,,,0,1,3" }, File.ReadAllLines(path));
    }

    [Fact]
    public void Should_keep_the_previous_file_and_no_temporary_file_when_a_write_fails()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("placement.csv");
        MapCsv.Write(path, bmu: [0], distance: [1f], rows: 1, cols: 2);
        var before = File.ReadAllText(path);

        // Node 9 does not exist on a 1×2 lattice: the writer throws part-way through.
        Assert.Throws<ArgumentOutOfRangeException>(() => MapCsv.Write(path, bmu: [1, 9], distance: [1f, 2f], rows: 1, cols: 2));

        Assert.Equal(before, File.ReadAllText(path));
        Assert.Equal(new[] { "placement.csv" }, dir.FileNames());
    }
}
