// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// Minimal ERC20 for local chains: anyone may mint (tests fund accounts and pools with it).
/// Storage layout is fixed on purpose (balanceOf at slot 0, allowance at slot 1) so adapters can
/// override an allowance in an eth_call simulation.
contract TestToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    uint256 public totalSupply;
    string public name;
    string public symbol;
    uint8 public immutable decimals;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed);
    error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 a = allowance[from][msg.sender];
        if (a < amount) revert ERC20InsufficientAllowance(msg.sender, a, amount);
        allowance[from][msg.sender] = a - amount;
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) internal {
        uint256 b = balanceOf[from];
        if (b < amount) revert ERC20InsufficientBalance(from, b, amount);
        balanceOf[from] = b - amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }

    /// Wrapped-native behaviour (WETH-style) so one contract also serves as GMX's WNT.
    function deposit() external payable {
        totalSupply += msg.value;
        balanceOf[msg.sender] += msg.value;
        emit Transfer(address(0), msg.sender, msg.value);
    }

    function withdraw(uint256 amount) external {
        uint256 b = balanceOf[msg.sender];
        if (b < amount) revert ERC20InsufficientBalance(msg.sender, b, amount);
        balanceOf[msg.sender] = b - amount;
        totalSupply -= amount;
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "ETH_TRANSFER_FAILED");
    }
}

/// Test helper for revert decoding: reverts with a string, a custom error, or succeeds.
contract Reverter {
    error CustomFailure(uint256 code, string why);
    uint256 public counter;

    function bump() external returns (uint256) {
        counter += 1;
        return counter;
    }

    function failWithString() external pure {
        revert("plain failure");
    }

    function failWithCustom(uint256 code) external pure {
        revert CustomFailure(code, "custom failure");
    }

    /// Succeeds in simulation at one counter value but reverts once mined after another bump.
    function bumpIfCounterIs(uint256 expected) external {
        require(counter == expected, "counter moved");
        counter += 1;
    }
}

/// Stand-in for the OP Stack GasPriceOracle predeploy (0x420...0F) so the L1 data fee path can run on anvil.
contract FakeGasPriceOracle {
    function getL1Fee(bytes memory data) external pure returns (uint256) {
        return (data.length + 68) * 16 * 1 gwei;
    }
}
